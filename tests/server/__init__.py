"""The reference server and the pytest plugin: what they serve, bill and count."""
