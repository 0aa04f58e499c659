"""The command line: every command, its options, its exit statuses and what it prints."""
