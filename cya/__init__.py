"""cya: multi-timescale duplicity backups in a hardlinked tree."""

__version__ = "0.1.0"
