"""Network builders that are not in torchvision (NAS-Bench-201 cells)."""
