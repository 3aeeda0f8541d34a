using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace SafeTune.Runtime.Training;

/// <summary>Where each trainable parameter lives inside the flat buffers: offset and dims, in a fixed order.</summary>
public sealed class ParameterLayout
{
    /// <summary>Offsets are aligned to this many elements (64 bytes for float32).</summary>
    public const int Alignment = 16;

    /// <summary>Creates a layout for parameters in the given order.</summary>
    public ParameterLayout(IEnumerable<(string Name, long[] Dims)> parameters)
    {
        long offset = 0;
        foreach (var (name, dims) in parameters)
        {
            long count = dims.Aggregate(1L, (p, d) => p * d);
            Entries.Add(new Entry(name, dims, offset, count));
            offset += (count + Alignment - 1) / Alignment * Alignment;
        }
        TotalElements = Math.Max(offset, Alignment);
    }

    /// <summary>A parameter's place.</summary>
    public sealed record Entry(string Name, long[] Dims, long Offset, long Count);

    /// <summary>The parameters in order.</summary>
    public List<Entry> Entries { get; } = [];

    /// <summary>Elements in a flat buffer (with alignment padding, which stays zero).</summary>
    public long TotalElements { get; }

    /// <summary>Elements that belong to parameters.</summary>
    public long ParameterElements => Entries.Sum(e => e.Count);
}

/// <summary>
/// One native, 64-byte aligned float32 buffer holding every trainable parameter (or its gradient, or an optimizer
/// moment) back to back. Per-parameter OrtValues are views into it, so a training graph reads and writes the same memory
/// an optimizer graph updates in one pass. The buffer owns its views and frees everything on dispose.
/// </summary>
public sealed unsafe class FlatBuffer : IDisposable
{
    private readonly float* _data;
    private readonly List<OrtValue> _views = [];
    private bool _disposed;

    /// <summary>Allocates a zeroed buffer for a layout.</summary>
    public FlatBuffer(ParameterLayout layout)
    {
        Layout = layout;
        nuint bytes = (nuint)(layout.TotalElements * sizeof(float));
        _data = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        NativeMemory.Clear(_data, bytes);
        Whole = View(0, [layout.TotalElements]);
        Views = layout.Entries.ToDictionary(e => e.Name, e => View(e.Offset, e.Dims), StringComparer.Ordinal);
    }

    /// <summary>The layout.</summary>
    public ParameterLayout Layout { get; }

    /// <summary>The whole buffer as one 1-D tensor.</summary>
    public OrtValue Whole { get; }

    /// <summary>Per-parameter views, by name.</summary>
    public IReadOnlyDictionary<string, OrtValue> Views { get; }

    /// <summary>The whole buffer as a span.</summary>
    public Span<float> Span => new(_data, checked((int)Layout.TotalElements));

    /// <summary>One parameter's elements.</summary>
    public Span<float> Of(string name)
    {
        var e = Layout.Entries.First(x => x.Name == name);
        return new Span<float>(_data + e.Offset, checked((int)e.Count));
    }

    /// <summary>Copies values in (by parameter).</summary>
    public void Set(string name, ReadOnlySpan<float> values)
    {
        var target = Of(name);
        if (values.Length != target.Length) throw new ArgumentException($"'{name}' holds {target.Length} values, not {values.Length}.");
        values.CopyTo(target);
    }

    /// <summary>Copies another buffer with the same layout.</summary>
    public void CopyFrom(FlatBuffer other) => other.Span.CopyTo(Span);

    /// <summary>Zeroes the buffer.</summary>
    public void Clear() => Span.Clear();

    private OrtValue View(long offset, long[] dims)
    {
        long count = dims.Aggregate(1L, (p, d) => p * d);
        var v = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, dims,
            (IntPtr)(_data + offset), count * sizeof(float));
        _views.Add(v);
        return v;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var v in _views) v.Dispose();
        NativeMemory.AlignedFree(_data);
    }
}
