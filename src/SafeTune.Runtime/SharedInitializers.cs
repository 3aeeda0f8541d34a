using System.Buffers;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Runtime.Training;

namespace SafeTune.Runtime;

/// <summary>
/// The frozen weights of a model (float32, or float16/bfloat16 where they are stored in 16 bits), held once and read by every session that needs them: a training session, its
/// evaluation session and the frozen reference policy of a fine-tune.
/// <para>
/// On the CPU the values are the model's own tensor bytes, pinned where they lie (a memory-mapped external data file, or
/// the loaded protobuf), so a model costs its weights once whatever the number of sessions. On CUDA and DirectML they
/// are copied once into device memory. Each session's graph gets the shared weights as graph inputs, bound with
/// IOBinding, so the graph handed to ONNX Runtime carries no weight data and ONNX Runtime makes no copy of its own
/// (no deserialized initializers, no constant-folded or pre-packed duplicates).
/// </para>
/// </summary>
internal sealed class SharedInitializers : IDisposable
{
    private readonly Dictionary<string, OrtValue> _values;
    private readonly Dictionary<string, ElementType> _types;
    private readonly List<MemoryHandle> _pins;
    private readonly FlatBuffer? _device;
    private readonly List<OrtValue> _deviceTensors;

    private SharedInitializers(Dictionary<string, OrtValue> values, Dictionary<string, ElementType> types, List<MemoryHandle> pins,
        FlatBuffer? device, List<OrtValue> deviceTensors, long elements, long bytes)
    {
        _values = values;
        _types = types;
        _pins = pins;
        _device = device;
        _deviceTensors = deviceTensors;
        Elements = elements;
        Bytes = bytes;
    }

    /// <summary>The fewest elements a weight has to be shared by default; smaller ones stay in each session's graph.</summary>
    public const long MinElements = 256;

    /// <summary>
    /// Shares the float32, float16 and bfloat16 initializers of <paramref name="model"/> with at least
    /// <paramref name="minElements"/> elements, except those named in <paramref name="exclude"/> (the trainable ones).
    /// With <paramref name="device"/> they are copied into device memory; without, they are used in place.
    /// </summary>
    public static SharedInitializers Create(Model model, IEnumerable<string> exclude, DeviceStorage? device = null, long minElements = MinElements)
    {
        ArgumentNullException.ThrowIfNull(model);
        var skip = new HashSet<string>(exclude, StringComparer.Ordinal);
        var tensors = model.Graph.Initializers
            .Select(v => v.Initializer!)
            .Where(t => t.ElementType is ElementType.Float or ElementType.Float16 or ElementType.BFloat16
                && !skip.Contains(t.Name) && t.ElementCount >= minElements)
            .ToList();
        long elements = tensors.Sum(t => t.ElementCount);
        long bytes = tensors.Sum(t => t.ByteCount);
        var types = tensors.ToDictionary(t => t.Name, t => t.ElementType, StringComparer.Ordinal);
        var values = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
        var pins = new List<MemoryHandle>(tensors.Count);
        var deviceTensors = new List<OrtValue>();
        FlatBuffer? buffer = null;
        try
        {
            if (device is not null)
            {
                // float32 weights in one flat buffer; 16-bit ones each in a device tensor of their own type.
                var floats = tensors.Where(t => t.ElementType == ElementType.Float).ToList();
                buffer = new FlatBuffer(new ParameterLayout(floats.Select(t => (t.Name, t.Dims))), device);
                foreach (var t in floats) buffer.Write(t.Name, t.AsSpan<float>());
                foreach (var (name, view) in buffer.Views) values[name] = view;
                foreach (var t in tensors.Where(t => t.ElementType != ElementType.Float))
                {
                    var target = OrtValue.CreateAllocatedTensorValue(device.Allocator, OrtType(t.ElementType), t.Dims);
                    deviceTensors.Add(target);
                    using (var pin = t.Memory.Pin())
                    {
                        unsafe
                        {
                            using var source = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, OrtType(t.ElementType), t.Dims,
                                (IntPtr)pin.Pointer, t.ByteCount);
                            device.Copy(source, target, t.ElementType);
                        }
                    }
                    values[t.Name] = target;
                }
                return new SharedInitializers(values, types, pins, buffer, deviceTensors, elements, bytes);
            }

            foreach (var t in tensors)
            {
                var pin = t.Memory.Pin();
                pins.Add(pin);
                unsafe
                {
                    values[t.Name] = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, OrtType(t.ElementType), t.Dims,
                        (IntPtr)pin.Pointer, t.ByteCount);
                }
            }
            return new SharedInitializers(values, types, pins, null, deviceTensors, elements, bytes);
        }
        catch
        {
            if (buffer is not null) buffer.Dispose();
            else foreach (var v in values.Values) v.Dispose();
            foreach (var v in deviceTensors) v.Dispose();
            foreach (var p in pins) p.Dispose();
            throw;
        }
    }

    private static TensorElementType OrtType(ElementType type) => type switch
    {
        ElementType.Float => TensorElementType.Float,
        ElementType.Float16 => TensorElementType.Float16,
        ElementType.BFloat16 => TensorElementType.BFloat16,
        _ => throw new UserInputException($"shared weights are float32, float16 or bfloat16, not {type.OnnxName()}."),
    };

    /// <summary>The names of the shared initializers.</summary>
    public IReadOnlyCollection<string> Names => _values.Keys;

    /// <summary>The number of elements held (once).</summary>
    public long Elements { get; }

    /// <summary>The bytes held (once): 4 per float32 element, 2 per 16-bit one.</summary>
    public long Bytes { get; }

    /// <summary>The element type an initializer is held in.</summary>
    public ElementType TypeOf(string name) => _types[name];

    /// <summary>The shared value of an initializer.</summary>
    public OrtValue this[string name] => _values[name];

    /// <summary>True when <paramref name="name"/> is shared.</summary>
    public bool Contains(string name) => _values.ContainsKey(name);

    /// <summary>
    /// A session for <paramref name="model"/> (which is not changed) in which every shared initializer the graph holds is
    /// a graph input instead; bind them with <see cref="Bind"/> before running. Where a weight is held in 16 bits and the
    /// graph has it as float32, the graph reads the 16-bit input through a Cast (<see cref="SixteenBitWeights"/>).
    /// </summary>
    public InferenceSession CreateSession(Model model, SessionConfig config)
    {
        using var options = SessionFactory.CreateOptions(config);
        return new InferenceSession(SessionGraph(model).ToBytes(), options);
    }

    /// <summary>The graph <see cref="CreateSession"/> hands to ONNX Runtime.</summary>
    public Model SessionGraph(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Clone("session graph");
        foreach (var group in _types.Where(kv => kv.Value != ElementType.Float).GroupBy(kv => kv.Value))
            SixteenBitWeights.Apply(graph.Graph, group.Select(kv => kv.Key), group.Key, asInputs: true);
        foreach (var name in _values.Keys)
            if (graph.Graph.FindInitializer(name) is { } v)
            {
                if (v.ElementType != _types[name])
                    throw new InvalidOperationException($"weight '{name}' is {v.ElementType.OnnxName()} in the graph but held as {_types[name].OnnxName()}.");
                graph.Graph.PromoteInitializerToInput(v);
            }
        return graph;
    }

    /// <summary>Binds every shared weight that <paramref name="session"/> takes as an input.</summary>
    public int Bind(BoundSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        int bound = 0;
        foreach (var input in session.Session.InputMetadata.Keys)
        {
            if (!_values.TryGetValue(input, out var value)) continue;
            session.BindInput(input, value);
            bound++;
        }
        return bound;
    }

    /// <summary>A bound session for <paramref name="model"/> reading the shared weights (see <see cref="CreateSession"/>).</summary>
    public BoundSession CreateBound(Model model, SessionConfig config)
    {
        var session = new BoundSession(CreateSession(model, config));
        Bind(session);
        return session;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_device is not null)
        {
            _device.Dispose();
            foreach (var v in _deviceTensors) v.Dispose();
        }
        else foreach (var v in _values.Values) v.Dispose();
        foreach (var p in _pins) p.Dispose();
        _values.Clear();
        _pins.Clear();
    }
}
