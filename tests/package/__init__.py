"""The package's shape: imports, cycles and who may use whose names."""
