using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>Where each trainable parameter lives inside the flat buffers: offset and dims, in a fixed order.</summary>
internal sealed class ParameterLayout
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
    internal sealed record Entry(string Name, long[] Dims, long Offset, long Count);

    /// <summary>The parameters in order.</summary>
    public List<Entry> Entries { get; } = [];

    /// <summary>Elements in a flat buffer (with alignment padding, which stays zero).</summary>
    public long TotalElements { get; }

    /// <summary>Elements that belong to parameters.</summary>
    public long ParameterElements => Entries.Sum(e => e.Count);
}

/// <summary>
/// One float32 buffer holding every trainable parameter (or its gradient, or an optimizer moment) back to back, in host
/// memory (native, 64-byte aligned) or in device memory (an ONNX Runtime allocation on the execution provider's device).
/// Per-parameter OrtValues are views into it, so a training graph reads and writes the same memory an optimizer graph
/// updates in one pass, and on a GPU nothing leaves the device between steps. The buffer owns its views and its memory.
/// </summary>
internal sealed unsafe class FlatBuffer : IDisposable
{
    private readonly float* _host;
    private readonly OrtValue? _deviceMemory;
    private readonly DeviceStorage? _device;
    private readonly List<OrtValue> _views = [];
    private bool _disposed;

    /// <summary>Allocates a zeroed buffer for a layout, on <paramref name="device"/> when given, else in host memory.</summary>
    public FlatBuffer(ParameterLayout layout, DeviceStorage? device = null)
    {
        Layout = layout;
        _device = device;
        long bytes = layout.TotalElements * sizeof(float);
        IntPtr data;
        OrtMemoryInfo info;
        if (device is null)
        {
            _host = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            NativeMemory.Clear(_host, (nuint)bytes);
            data = (IntPtr)_host;
            info = OrtMemoryInfo.DefaultInstance;
        }
        else
        {
            _deviceMemory = OrtValue.CreateAllocatedTensorValue(device.Allocator, TensorElementType.Float, [layout.TotalElements]);
            // The address only: device memory is never dereferenced on the host.
            data = (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetReference(_deviceMemory.GetTensorMutableRawData()));
            info = device.MemoryInfo;
        }
        Whole = View(info, data, 0, [layout.TotalElements]);
        Views = layout.Entries.ToDictionary(e => e.Name, e => View(info, data, e.Offset, e.Dims), StringComparer.Ordinal);
        if (device is not null) Clear();
    }

    public ParameterLayout Layout { get; }

    /// <summary>True when the buffer lives in device memory.</summary>
    public bool OnDevice => _device is not null;

    /// <summary>The whole buffer as one 1-D tensor.</summary>
    public OrtValue Whole { get; }

    /// <summary>Per-parameter views, by name.</summary>
    public IReadOnlyDictionary<string, OrtValue> Views { get; }

    private ParameterLayout.Entry Entry(string name) =>
        Layout.Entries.FirstOrDefault(x => x.Name == name) ?? throw new KeyNotFoundException($"'{name}' is not a trainable parameter.");

    /// <summary>A copy of one parameter's elements (downloaded from the device when the buffer lives there).</summary>
    public float[] Read(string name)
    {
        var e = Entry(name);
        var result = new float[e.Count];
        if (_device is null) new ReadOnlySpan<float>(_host + e.Offset, result.Length).CopyTo(result);
        else _device.Download(Views[name], result, e.Dims);
        return result;
    }

    /// <summary>Copies values into one parameter's place (uploaded to the device when the buffer lives there).</summary>
    public void Write(string name, ReadOnlySpan<float> values)
    {
        var e = Entry(name);
        if (values.Length != e.Count) throw new UserInputException($"'{name}' holds {e.Count} values, not {values.Length}.");
        if (_device is null) values.CopyTo(new Span<float>(_host + e.Offset, values.Length));
        else _device.Upload(values.ToArray(), Views[name], e.Dims);
    }

    /// <summary>Copies another buffer with the same layout.</summary>
    public void CopyFrom(FlatBuffer other)
    {
        foreach (var e in Layout.Entries) Write(e.Name, other.Read(e.Name));
    }

    /// <summary>Zeroes the buffer.</summary>
    public void Clear()
    {
        if (_device is null) new Span<float>(_host, checked((int)Layout.TotalElements)).Clear();
        else _device.Upload(new float[Layout.TotalElements], Whole, [Layout.TotalElements]);
    }

    private OrtValue View(OrtMemoryInfo info, IntPtr data, long offset, long[] dims)
    {
        long count = dims.Aggregate(1L, (p, d) => p * d);
        var v = OrtValue.CreateTensorValueWithData(info, TensorElementType.Float, dims, data + (nint)(offset * sizeof(float)), count * sizeof(float));
        _views.Add(v);
        return v;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var v in _views) v.Dispose();
        if (_host is not null) NativeMemory.AlignedFree(_host);
        _deviceMemory?.Dispose();
    }
}

/// <summary>
/// Device memory for flat buffers: an ONNX Runtime allocator on the execution provider's device, and an Identity
/// session on the same provider that copies between host arrays and device views (ONNX Runtime does the transfer).
/// </summary>
internal sealed class DeviceStorage : IDisposable
{
    private readonly SessionConfig _config;
    private readonly Dictionary<Onnx.ElementType, BoundSession> _copies = [];

    /// <summary>Creates device storage for sessions made with <paramref name="config"/>.</summary>
    public DeviceStorage(SessionConfig config)
    {
        _config = config;
        MemoryInfo = config.Provider switch
        {
            ExecutionProvider.Cuda => new OrtMemoryInfo("Cuda", OrtAllocatorType.DeviceAllocator, config.DeviceId, OrtMemType.Default),
            ExecutionProvider.DirectML => new OrtMemoryInfo("DML", OrtAllocatorType.DeviceAllocator, config.DeviceId, OrtMemType.Default),
            _ => OrtMemoryInfo.DefaultInstance,
        };
        Allocator = new OrtAllocator(CopySession(Onnx.ElementType.Float).Session, MemoryInfo);
    }

    /// <summary>Where the memory lives.</summary>
    public OrtMemoryInfo MemoryInfo { get; }

    /// <summary>The device allocator.</summary>
    public OrtAllocator Allocator { get; }

    /// <summary>The Identity session on the provider that copies tensors of <paramref name="type"/> (any shape), made once.</summary>
    private BoundSession CopySession(Onnx.ElementType type)
    {
        if (_copies.TryGetValue(type, out var copy)) return copy;
        var b = Onnx.GraphBuilder.ForNewModel(17, "copy " + Onnx.ElementTypes.OnnxName(type));
        var x = b.Graph.AddInput("x", type, null); // any shape
        b.Output(b.Identity(x), "y");
        return _copies[type] = new BoundSession(SessionFactory.Create(b.Model!, _config with { DisableCpuFallback = false }));
    }

    /// <summary>Copies a tensor of <paramref name="type"/> (host or device) into another of the same shape and type.</summary>
    internal void Copy(OrtValue source, OrtValue target, Onnx.ElementType type)
    {
        var copy = CopySession(type);
        copy.BindInput("x", source);
        copy.BindOutput("y", target);
        copy.Run();
        copy.ClearBindings();
    }

    internal void Upload(float[] source, OrtValue target, long[] dims)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(source, dims);
        Copy(input, target, Onnx.ElementType.Float);
    }

    internal void Download(OrtValue source, float[] target, long[] dims)
    {
        using var output = OrtValue.CreateTensorValueFromMemory(target, dims);
        Copy(source, output, Onnx.ElementType.Float);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Allocator.Dispose();
        foreach (var copy in _copies.Values) copy.Dispose();
        if (!ReferenceEquals(MemoryInfo, OrtMemoryInfo.DefaultInstance)) MemoryInfo.Dispose();
    }
}
