"""numba.cuda kernels for one tile of the SRCNN forward pass (imported lazily by srcnn_np.gpu.runner).

Importing this module imports numba.cuda: NUMBA_ENABLE_CUDASIM must be set before that, and
only srcnn_np.gpu.runner imports it, after checking that CUDA is usable.

Device layouts: feature maps are channels-first (C, H, W) float32, so neighbouring threads
read and write neighbouring addresses; conv weights are (Cin, K*K, Cout) float32 (tap
t = dy*K + dx); bicubic taps are the (n, 4) int64 / float32 tables of
srcnn_np.cpu.kernels.cubic_taps. Every kernel runs one thread per output pixel with a 2-D grid,
blockDim = (x, y) = (columns, rows). A tile's arrays cover a window of the whole image whose
top-left pixel has global coordinates (oy0, ox0); pixels of a window that fall outside the
image are written as 0, which is exactly the zero padding the next convolution expects.
"""
import functools

from numba import cuda, float32


@cuda.jit
def bicubic_tile(lr, ly0, lx0, yi, yw, xi, xw, oy0, ox0, out):
    """Bicubic upsampling of one window, torch's align_corners=False with clamped borders.

    lr:  (h, w) float32, rows ly0.. and columns lx0.. of the low-res image (every row and
         column the window's taps reach).
    yi, yw: (sH, 4) int64 / float32 row taps of the whole image; xi, xw: (sW, 4) column taps.
    out: (1, Hu, Wu) float32, upsampled pixels of global rows oy0.. and columns ox0..;
         pixels outside the (sH, sW) image are 0.
    """
    x, y = cuda.grid(2)
    if y >= out.shape[1] or x >= out.shape[2]:
        return
    gy = oy0 + y
    gx = ox0 + x
    if gy < 0 or gy >= yi.shape[0] or gx < 0 or gx >= xi.shape[0]:
        out[0, y, x] = float32(0.0)
        return
    acc = float32(0.0)
    for ky in range(4):  # horizontal pass inside, as the CPU kernel (and torch) order it
        r = yi[gy, ky] - ly0
        row = float32(0.0)
        for kx in range(4):
            row += xw[gx, kx] * lr[r, xi[gx, kx] - lx0]
        acc += yw[gy, ky] * row
    out[0, y, x] = acc


@functools.cache
def conv_kernel(k: int, cin: int, cout: int, cin_chunk: int, relu: bool, block: tuple):
    """A 'valid' K x K convolution kernel specialised for these sizes and blockDim `block`.

    The kernel's signature is (inp, w, b, oy0, ox0, height, width, out):
      inp (Cin, Hi, Wi) float32, w (Cin * K*K * Cout,) float32 (a flat (Cin, K*K, Cout)),
      b (Cout,) float32,
      out (Cout, Hi - K + 1, Wi - K + 1) float32 whose pixel (y, x) is the image pixel
      (oy0 + y, ox0 + x); pixels outside the (height, width) image are written as 0.
    Each block stages an input tile (cin_chunk, by + K - 1, bx + K - 1) and the matching
    weights (cin_chunk, K*K, Cout) in shared memory, cin_chunk input channels at a time;
    each thread keeps its Cout accumulators in a local array. ReLU is fused when `relu`.
    """
    bx, by = block
    sh, sw = by + k - 1, bx + k - 1
    kk = k * k
    tile_shape = (cin_chunk, sh, sw)
    n_tile = cin_chunk * sh * sw
    n_weights = cin_chunk * kk * cout
    n_threads = bx * by
    if cin % cin_chunk:
        raise ValueError(f"cin_chunk {cin_chunk} does not divide cin {cin}")

    @cuda.jit
    def conv(inp, w, b, oy0, ox0, height, width, out):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        x0 = cuda.blockIdx.x * bx
        y0 = cuda.blockIdx.y * by
        x = x0 + tx
        y = y0 + ty
        gy = oy0 + y
        gx = ox0 + x
        in_h, in_w = inp.shape[1], inp.shape[2]
        active = y < out.shape[1] and x < out.shape[2]
        inside = active and gy >= 0 and gy < height and gx >= 0 and gx < width
        tid = ty * bx + tx
        tile = cuda.shared.array(tile_shape, float32)
        wts = cuda.shared.array(n_weights, float32)  # (cin_chunk, K*K, Cout) flat
        acc = cuda.local.array(cout, float32)
        for o in range(cout):
            acc[o] = b[o]
        for c0 in range(0, cin, cin_chunk):
            cuda.syncthreads()  # every thread is done with the previous chunk
            for i in range(tid, n_tile, n_threads):
                c = i // (sh * sw)
                r = (i // sw) % sh
                s = i % sw
                if y0 + r < in_h and x0 + s < in_w:
                    tile[c, r, s] = inp[c0 + c, y0 + r, x0 + s]
                else:  # only read by threads past the output's edge
                    tile[c, r, s] = float32(0.0)
            w0 = c0 * kk * cout  # this chunk's weights are contiguous in w
            for i in range(tid, n_weights, n_threads):
                wts[i] = w[w0 + i]
            cuda.syncthreads()
            if inside:
                for c in range(cin_chunk):
                    for dy in range(k):
                        for dx in range(k):
                            v = tile[c, ty + dy, tx + dx]
                            base = ((c * k + dy) * k + dx) * cout
                            for o in range(cout):
                                acc[o] += v * wts[base + o]
        if active:
            for o in range(cout):
                if not inside:
                    out[o, y, x] = float32(0.0)
                elif relu:
                    out[o, y, x] = max(acc[o], float32(0.0))
                else:
                    out[o, y, x] = acc[o]

    return conv
