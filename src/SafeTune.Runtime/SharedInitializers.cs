using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;

namespace SafeTune.Runtime;

/// <summary>
/// Frozen float32 initializers held once and handed to every session that reads them, through
/// <c>SessionOptions.AddInitializer</c> (ONNX Runtime then uses these buffers instead of deserializing its own copy) and
/// one shared prepacked-weights container (so kernels that repack weights, such as the CPU MatMul, pack them once for
/// all sessions). A training session, its evaluation session and the frozen reference policy of a LoRA fine-tune thus
/// hold the base weights once. The buffers live in host memory, or in device memory when made with a
/// <see cref="DeviceStorage"/>; they must outlive every session they were added to.
/// </summary>
public sealed class SharedInitializers : IDisposable
{
    private readonly FlatBuffer _buffer;

    private SharedInitializers(FlatBuffer buffer)
    {
        _buffer = buffer;
        PrePacked = new PrePackedWeightsContainer();
    }

    /// <summary>
    /// Copies the float32 initializers of <paramref name="model"/> with at least <paramref name="minElements"/> elements,
    /// except those named in <paramref name="exclude"/> (the trainable ones), into one shared buffer.
    /// </summary>
    public static SharedInitializers Create(Model model, IEnumerable<string> exclude, DeviceStorage? device = null, long minElements = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        var skip = new HashSet<string>(exclude, StringComparer.Ordinal);
        var tensors = model.Graph.Initializers
            .Select(v => v.Initializer!)
            .Where(t => t.ElementType == ElementType.Float && !skip.Contains(t.Name) && t.Dims.Aggregate(1L, (p, d) => p * d) >= minElements)
            .ToList();
        var buffer = new FlatBuffer(new ParameterLayout(tensors.Select(t => (t.Name, t.Dims))), device);
        try
        {
            foreach (var t in tensors) buffer.Write(t.Name, t.AsSpan<float>());
            return new SharedInitializers(buffer);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>The names of the shared initializers.</summary>
    public IReadOnlyCollection<string> Names => (IReadOnlyCollection<string>)_buffer.Views.Keys;

    /// <summary>The number of float elements held (once).</summary>
    public long Elements => _buffer.Layout.ParameterElements;

    /// <summary>The prepacked-weights container shared by the sessions.</summary>
    public PrePackedWeightsContainer PrePacked { get; }

    /// <summary>The shared value of an initializer.</summary>
    public OrtValue this[string name] => _buffer.Views[name];

    /// <summary>True when <paramref name="name"/> is shared.</summary>
    public bool Contains(string name) => _buffer.Views.ContainsKey(name);

    /// <summary>Adds to <paramref name="options"/> every shared initializer that <paramref name="graph"/> holds.</summary>
    public int AddTo(SessionOptions options, Graph graph)
    {
        ArgumentNullException.ThrowIfNull(options);
        int added = 0;
        foreach (var (name, value) in _buffer.Views)
        {
            if (graph.FindInitializer(name) is null) continue;
            options.AddInitializer(name, value);
            added++;
        }
        return added;
    }

    /// <summary>A session for <paramref name="model"/> that reads the shared initializers it holds from these buffers.</summary>
    public InferenceSession CreateSession(Model model, SessionConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var options = SessionFactory.CreateOptions(config);
        AddTo(options, model.Graph);
        return new InferenceSession(model.ToBytes(), options, PrePacked);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        PrePacked.Dispose();
        _buffer.Dispose();
    }
}
