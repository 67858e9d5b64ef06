"""What differs between Keras's backends (TensorFlow, JAX, PyTorch), in one corner: how a function of
the model is compiled, 64-bit floats, a top-k that keeps the lower index first among equals, and
seeded draws. Everything else in the package is `keras.ops`.

    compiled(fn, variables)   TensorFlow: a tf.function traced once for any shape (every dimension
                              unknown); JAX: jax.jit, the variables' values passed in (keras.StatelessScope),
                              64-bit floats on; PyTorch: fn itself, eagerly, without gradients
    DYNAMIC                   whether a compiled function takes new shapes without compiling again
                              (the beam search lets done articles leave only then)
    x64()                     a context in which float64 is float64 (JAX's default truncates it to float32)
    top_k(x, k)               the k largest along the last axis, best first, the lower index first among equals
    categorical(logits, seed, step)  one draw per row, a function of the logits, the seed and the step alone
    packed_bilstm(layer, x, mask)  PyTorch: a masked bidirectional LSTM as packed sequences through its fused
                              LSTM (cuDNN on a GPU), where Keras's own runs a loop over the steps
"""
import contextlib

import keras
from keras import ops, tree

NAME = keras.backend.backend()
DYNAMIC = NAME != "jax"


def x64():
    if NAME == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def compiled(fn, variables=(), xla=False):
    """fn (of nested structures of tensors) compiled once for this backend; `variables`: the Keras
    variables it reads (JAX passes their current values in, so a function compiled once sees the
    weights as they are when it is called). xla=True, TensorFlow: under XLA, compiled for each shape."""
    if NAME == "tensorflow":
        if xla:
            import tensorflow as tf

            return tf.function(fn, jit_compile=True, autograph=False)
        return _traced_once(fn)
    if NAME == "jax":
        import jax

        variables = list(variables)

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        jitted = jax.jit(stateless)

        def run(*args):
            with x64():
                return jitted([v.value for v in variables], *args)
        return run
    import torch

    def run(*args):
        with torch.no_grad():
            return fn(*args)
    return run


def _traced_once(fn):
    """A tf.function traced at its first call for the structures of that call's arguments with every
    dimension unknown: any batch size and length, never traced again."""
    import tensorflow as tf

    traced = []

    def run(*args):
        args = tree.map_structure(lambda a: tf.convert_to_tensor(a), args)
        if not traced:
            specs = tree.map_structure(lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype), args)
            traced.append(tf.function(fn, input_signature=list(specs), autograph=False))
        return traced[0](*args)

    run.tracing_count = lambda: traced[0].experimental_get_tracing_count() if traced else 0
    return run


def top_k(x, k):
    """(values, indices) of the k largest along the last axis, best first and the lower index first
    among equals (TensorFlow's and JAX's top_k promise it; PyTorch's topk does not, so a stable sort)."""
    if NAME == "torch":
        order = ops.argsort(-x, axis=-1)[..., :k]  # stable
        return ops.take_along_axis(x, order, axis=-1), order
    values, indices = ops.top_k(x, k)
    return values, ops.cast(indices, "int32")


def categorical(logits, seed, step):
    """One id drawn per row of `logits` (rows, V), as int32: a function of the logits, `seed` (two
    int32s) and `step` alone, so a resumed run draws the same."""
    if NAME == "tensorflow":
        import tensorflow as tf

        step_seed = tf.random.experimental.stateless_fold_in(seed, step)
        return tf.cast(tf.random.stateless_categorical(logits, 1, step_seed)[:, 0], tf.int32)
    if NAME == "jax":
        import jax

        key = jax.random.fold_in(jax.random.wrap_key_data(ops.cast(seed, "uint32")), step)
        return ops.cast(jax.random.categorical(key, logits, axis=-1), "int32")
    import torch

    generator = torch.Generator(device=logits.device)
    seed = [int(s) & 0xFFFFFFFF for s in ops.convert_to_numpy(seed)]
    generator.manual_seed((seed[0] << 32 | seed[1]) ^ int(step) * 0x9E3779B97F4A7C15 & (1 << 63) - 1)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0].int()


def packed_bilstm(layer, x, mask, training=False):
    """A Keras Bidirectional LSTM (concatenated outputs, sequences returned) over right-padded `x`
    (batch, steps, dim) whose `mask` (batch, steps) is True on each row's first characters, run as
    PyTorch's packed sequences through its fused LSTM: the outputs of Keras's masked scan (zeros at
    the padding, each direction over the row's own characters alone), to float rounding. None where
    it does not apply (another backend; dropout inside the LSTM)."""
    if NAME != "torch" or layer.forward_layer.cell.recurrent_dropout or layer.forward_layer.cell.dropout:
        return None
    import torch
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    lengths = mask.sum(dim=1).to("cpu", torch.int64)
    packed = pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    params = []
    for cell in (layer.forward_layer.cell, layer.backward_layer.cell):  # Keras's gates i, f, c, o are torch's
        kernel, recurrent, bias = (v.value.to(x.dtype) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
        params += [kernel.t(), recurrent.t(), bias, torch.zeros_like(bias)]
    start = x.new_zeros((2, x.shape[0], layer.forward_layer.cell.units))
    out, _, _ = torch._VF.lstm(packed.data, packed.batch_sizes, (start, start), params, True, 1, 0.0,
                               bool(training), True)
    out, _ = pad_packed_sequence(PackedSequence(out, packed.batch_sizes, packed.sorted_indices,
                                                packed.unsorted_indices), batch_first=True, total_length=x.shape[1])
    return out * mask[:, :, None].to(out.dtype)  # an empty row (length clamped to 1) reads nothing
