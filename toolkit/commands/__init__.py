"""Click commands, one module per pipeline stage. Keep imports here light: heavy ones go inside the functions."""
