"""Every training step (teacher forcing and the sequence-level stage) over tf.distribute's replicas:
one Adam step on a loss each replica computes for its share of the batch (replica i the i-th of
`replicas` near-equal slices of the batch's rows, as np.array_split cuts them), traced once per batch size."""
import tensorflow as tf


def share(array, replicas):
    """This replica's slice of `array`'s rows (the array itself on one replica)."""
    if replicas == 1:
        return array
    i = tf.distribute.get_replica_context().replica_id_in_sync_group
    n = tf.shape(array)[0]
    size, extra = n // replicas, n % replicas
    start = i * size + tf.minimum(i, extra)
    return array[start:start + size + tf.cast(i < extra, tf.int32)]


def distributed_steps(model, optimizer, strategy, replica_loss, signature, jit_compile=None):
    """(rows, *more) -> the step for batches of that many rows, traced once per batch size for any
    lengths with `signature(rows, *more)`: the replicas' sum of `replica_loss(*inputs)`, each on its
    share of the inputs, after one Adam step on the sum of their gradients."""

    def replica_step(*inputs):
        with tf.GradientTape() as tape:
            loss = replica_loss(*inputs)
            scaled = optimizer.scale_loss(loss)  # loss scaling under mixed precision; else itself
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    def distributed_step(*inputs):
        losses = strategy.run(replica_step, args=inputs)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    graphs = {}

    def graph(rows, *more):
        if rows not in graphs:
            graphs[rows] = tf.function(distributed_step, jit_compile=jit_compile,
                                       input_signature=signature(rows, *more))
        return graphs[rows]

    return graph
