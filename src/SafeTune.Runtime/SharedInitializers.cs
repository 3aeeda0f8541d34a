using System.Buffers;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;

namespace SafeTune.Runtime;

/// <summary>
/// The frozen float32 weights of a model, held once and read by every session that needs them: a training session, its
/// evaluation session and the frozen reference policy of a fine-tune.
/// <para>
/// On the CPU the values are the model's own tensor bytes, pinned where they lie (a memory-mapped external data file, or
/// the loaded protobuf), so a model costs its weights once whatever the number of sessions. On CUDA and DirectML they
/// are copied once into device memory. Each session's graph gets the shared weights as graph inputs, bound with
/// IOBinding, so the graph handed to ONNX Runtime carries no weight data and ONNX Runtime makes no copy of its own
/// (no deserialized initializers, no constant-folded or pre-packed duplicates).
/// </para>
/// </summary>
public sealed class SharedInitializers : IDisposable
{
    private readonly Dictionary<string, OrtValue> _values;
    private readonly List<MemoryHandle> _pins;
    private readonly FlatBuffer? _device;

    private SharedInitializers(Dictionary<string, OrtValue> values, List<MemoryHandle> pins, FlatBuffer? device, long elements)
    {
        _values = values;
        _pins = pins;
        _device = device;
        Elements = elements;
    }

    /// <summary>
    /// Shares the float32 initializers of <paramref name="model"/> with at least <paramref name="minElements"/> elements,
    /// except those named in <paramref name="exclude"/> (the trainable ones). With <paramref name="device"/> they are
    /// copied into one device buffer; without, they are used in place.
    /// </summary>
    public static SharedInitializers Create(Model model, IEnumerable<string> exclude, DeviceStorage? device = null, long minElements = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        var skip = new HashSet<string>(exclude, StringComparer.Ordinal);
        var tensors = model.Graph.Initializers
            .Select(v => v.Initializer!)
            .Where(t => t.ElementType == ElementType.Float && !skip.Contains(t.Name) && t.ElementCount >= minElements)
            .ToList();
        long elements = tensors.Sum(t => t.ElementCount);
        if (device is not null)
        {
            var buffer = new FlatBuffer(new ParameterLayout(tensors.Select(t => (t.Name, t.Dims))), device);
            try
            {
                foreach (var t in tensors) buffer.Write(t.Name, t.AsSpan<float>());
                return new SharedInitializers(buffer.Views.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal), [], buffer, elements);
            }
            catch
            {
                buffer.Dispose();
                throw;
            }
        }

        var values = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
        var pins = new List<MemoryHandle>(tensors.Count);
        try
        {
            foreach (var t in tensors)
            {
                var pin = t.Memory.Pin();
                pins.Add(pin);
                unsafe
                {
                    values[t.Name] = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, t.Dims,
                        (IntPtr)pin.Pointer, t.ByteCount);
                }
            }
            return new SharedInitializers(values, pins, null, elements);
        }
        catch
        {
            foreach (var v in values.Values) v.Dispose();
            foreach (var p in pins) p.Dispose();
            throw;
        }
    }

    /// <summary>The names of the shared initializers.</summary>
    public IReadOnlyCollection<string> Names => _values.Keys;

    /// <summary>The number of float elements held (once).</summary>
    public long Elements { get; }

    /// <summary>The bytes held (once).</summary>
    public long Bytes => Elements * sizeof(float);

    /// <summary>The shared value of an initializer.</summary>
    public OrtValue this[string name] => _values[name];

    /// <summary>True when <paramref name="name"/> is shared.</summary>
    public bool Contains(string name) => _values.ContainsKey(name);

    /// <summary>
    /// A session for <paramref name="model"/> (which is not changed) in which every shared initializer the graph holds is
    /// a graph input instead; bind them with <see cref="Bind"/> before running.
    /// </summary>
    public InferenceSession CreateSession(Model model, SessionConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = model.Clone("session graph");
        foreach (var name in _values.Keys)
            if (graph.Graph.FindInitializer(name) is { } v) graph.Graph.PromoteInitializerToInput(v);
        using var options = SessionFactory.CreateOptions(config);
        return new InferenceSession(graph.ToBytes(), options);
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
        if (_device is not null) _device.Dispose();
        else foreach (var v in _values.Values) v.Dispose();
        foreach (var p in _pins) p.Dispose();
        _values.Clear();
        _pins.Clear();
    }
}
