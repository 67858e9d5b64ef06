"""What machine a benchmark ran on, and what it can do: printed beside every figure.

    python bench/machine.py     # the CPU, its cores and vector extensions, and its float32 matmul limit
"""
import os
import platform
import time


def cpu_field(key):
    """A field of /proc/cpuinfo's first CPU ("" where there is none, or no such file)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.split(":", 1)[0].strip() == key), "")


def bfloat16_units():
    """The CPU's bfloat16 matrix units, as oneDNN uses them ("AMX-BF16", "AVX512_BF16"), or None."""
    flags = cpu_field("flags").split()
    return "AMX-BF16" if "amx_bf16" in flags else "AVX512_BF16" if "avx512_bf16" in flags else None


def cpu_model():
    """The CPU's model name, as /proc/cpuinfo (Linux) or the platform gives it."""
    name, family, model, flags = (cpu_field(k) for k in ("model name", "cpu family", "model", "flags"))
    flags = flags.split()
    if not name:
        return platform.processor() or platform.machine()
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    # a virtual machine may name only the vendor ("AMD EPYC"): family and model tell its CPUs apart
    return f"{name} (family {family}, model {model}, {vectors})" if family else f"{name} ({vectors})"


def describe():
    """One line: CPU model, cores, vector extensions, whether oneDNN is on."""
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default")
    return f"{cpu_model()}, {os.cpu_count()} cores; TF_ENABLE_ONEDNN_OPTS={onednn}"


def matmul_limit(size=2048, repeat=5, calls=10, dtype="float32"):
    """The machine's limit for `dtype` products as TensorFlow reaches it: GFLOP/s of the best of
    `repeat` runs of `calls` (size × size) · (size × size) products."""
    import tensorflow as tf

    a, b = (tf.cast(tf.random.normal([size, size]), dtype) for _ in range(2))
    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    product(a, b).numpy()
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            product(a, b).numpy()
        best = max(best, calls * 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import titlegen  # noqa: F401  (the package's oneDNN default, before TensorFlow starts)

    print(describe())
    print(f"float32 matmul limit: {matmul_limit():.0f} GFLOP/s")
    if bfloat16_units():
        print(f"bfloat16 matmul limit ({bfloat16_units()}): {matmul_limit(dtype='bfloat16'):.0f} GFLOP/s")
