"""Measured comparisons: cya against plain duplicity and the strategies users pick instead."""
