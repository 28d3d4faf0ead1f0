"""The pure core: no disk, network, process or clock access (see STYLE.md)."""
