"""The GSHN / ASH-Nets model family: segmenters, backbone, visual encoders, transformer, objectives, heads."""
