"""How a batch splits over tf.distribute's replicas, for every training step (teacher forcing and
the sequence-level stage): replica i takes the i-th of `replicas` near-equal slices of the batch's
rows, as np.array_split cuts them."""
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
