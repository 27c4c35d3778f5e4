"""Analyses of the paper as importable functions (tools/analysis_tools/* are thin CLIs)."""
