"""Image and science-file formats: reading, writing and atomic output. Never imports the model."""
