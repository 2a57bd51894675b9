"""Numba CPU kernels: bicubic upsampling and the convolutions."""
