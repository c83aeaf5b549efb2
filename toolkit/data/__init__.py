"""Face detection (MTCNN), cropping/alignment, the faces CSV and LFW pairs."""
