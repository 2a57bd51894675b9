"""PyTorch reference of SRCNN: the model the project trains, and the oracle srcnn_np is tested against."""
