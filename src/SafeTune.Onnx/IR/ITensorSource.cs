namespace SafeTune.Onnx;

/// <summary>
/// Produces a tensor's bytes on demand (see <see cref="TensorData.FromSource"/>): a weight read from a checkpoint file and
/// converted as it is written, or a value computed from other tensors. Writing streams the bytes, so a model of many
/// gigabytes can be written while holding one small buffer.
/// </summary>
public interface ITensorSource
{
    /// <summary>The number of bytes <see cref="WriteTo"/> writes.</summary>
    long ByteCount { get; }

    /// <summary>Writes exactly <see cref="ByteCount"/> little-endian bytes to <paramref name="destination"/>.</summary>
    void WriteTo(Stream destination);
}
