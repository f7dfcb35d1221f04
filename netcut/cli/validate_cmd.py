"""`netcut validate`: registered in validate_cmd.py once validation exists."""
