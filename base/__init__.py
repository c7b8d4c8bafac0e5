"""Small utilities every layer may use: they import nothing of the project."""
