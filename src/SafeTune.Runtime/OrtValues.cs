using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SafeTune.Onnx;

namespace SafeTune.Runtime;

/// <summary>Creates and reads OrtValues.</summary>
internal static class OrtValues
{
    /// <summary>
    /// A tensor over a managed array, without a copy. The OrtValue pins the array until it is disposed, so the array must
    /// not be replaced while the value is in use.
    /// </summary>
    public static OrtValue Wrap<T>(T[] data, params long[] shape) where T : unmanaged
    {
        long count = shape.Aggregate(1L, (p, d) => p * d);
        if (count != data.LongLength)
            throw new UserInputException($"{data.Length} elements do not fill shape [{string.Join(", ", shape)}] ({count}).");
        return OrtValue.CreateTensorValueFromMemory(data, shape);
    }

    /// <summary>A tensor allocated and owned by ONNX Runtime's CPU allocator, filled with a copy of <paramref name="data"/>.</summary>
    public static OrtValue Copy<T>(ReadOnlySpan<T> data, params long[] shape) where T : unmanaged
    {
        var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToOrt(ElementTypes.Of<T>()), shape);
        data.CopyTo(v.GetTensorMutableDataAsSpan<T>());
        return v;
    }

    /// <summary>A tensor holding a copy of an initializer's data.</summary>
    public static OrtValue FromTensorData(TensorData t)
    {
        var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToOrt(t.ElementType), t.Dims);
        t.Bytes.CopyTo(v.GetTensorMutableRawData());
        return v;
    }

    /// <summary>A zero-filled tensor owned by ONNX Runtime.</summary>
    public static OrtValue Zeros(ElementType type, params long[] shape)
    {
        var v = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToOrt(type), shape);
        v.GetTensorMutableRawData().Clear();
        return v;
    }

    /// <summary>The shape of a tensor value.</summary>
    public static long[] ShapeOf(OrtValue v) => v.GetTensorTypeAndShape().Shape;

    /// <summary>Copies a float tensor's elements out.</summary>
    public static float[] ToFloats(OrtValue v) => v.GetTensorDataAsSpan<float>().ToArray();

    /// <summary>Maps a SafeTune element type to ONNX Runtime's.</summary>
    public static TensorElementType ToOrt(ElementType t) => (TensorElementType)(int)t;
}

/// <summary>
/// Owns a set of OrtValues by name and disposes them together: exactly one owner per native object.
/// </summary>
internal sealed class OrtValueBag : IDisposable
{
    private readonly Dictionary<string, OrtValue> _values = new(StringComparer.Ordinal);

    /// <summary>The names held.</summary>
    public IEnumerable<string> Names => _values.Keys;

    /// <summary>The value under <paramref name="name"/>.</summary>
    public OrtValue this[string name] => _values.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no tensor named '{name}'.");

    /// <summary>Takes ownership of <paramref name="value"/>; a value already held under the name is disposed.</summary>
    public OrtValue Add(string name, OrtValue value)
    {
        if (_values.Remove(name, out var old) && !ReferenceEquals(old, value)) old.Dispose();
        _values[name] = value;
        return value;
    }

    /// <summary>True when a value is held under the name.</summary>
    public bool Contains(string name) => _values.ContainsKey(name);

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var v in _values.Values) v.Dispose();
        _values.Clear();
    }
}
