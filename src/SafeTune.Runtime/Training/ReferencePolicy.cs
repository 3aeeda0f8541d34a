using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>What the reference pass computes besides what a caller's graph extension adds.</summary>
internal sealed record ReferenceOptions
{
    /// <summary>Where the graph runs.</summary>
    public SessionConfig Runtime { get; init; } = new();

    /// <summary>Frozen weights shared with the training session (not owned); null for a private copy.</summary>
    public SharedInitializers? SharedWeights { get; init; }

    /// <summary>Compute the log-probabilities [N, V] and the label log-probabilities [N] at the response positions.</summary>
    public bool LogProbs { get; init; } = true;

    /// <summary>
    /// Hand over the final hidden rows [N, d] at the response positions (<see cref="ResponseNames.ReferenceHidden"/>)
    /// instead of the log-probabilities: what a training graph with a fused head reads (see
    /// <see cref="TrainingSession.StepInputs"/>). The head then runs once, chunk by chunk, in the training step.
    /// </summary>
    public bool HiddenRows { get; init; }

    /// <summary>
    /// Extends the graph before the session is made (for example an activation probe that reads the model's own hidden
    /// states); returns the names of the outputs it added, which <see cref="ReferencePolicy.Run"/> then returns too.
    /// </summary>
    public Func<Model, IReadOnlyList<string>>? Extend { get; init; }
}

/// <summary>The outputs of one reference pass; owns them (dispose after the training step that reads them).</summary>
internal sealed class ReferenceOutputs : IDisposable
{
    private readonly IDisposableReadOnlyCollection<OrtValue> _values;
    private readonly Dictionary<string, OrtValue> _byName;

    internal ReferenceOutputs(IReadOnlyList<string> names, IDisposableReadOnlyCollection<OrtValue> values)
    {
        _values = values;
        _byName = names.Select((n, i) => (n, v: values[i])).ToDictionary(x => x.n, x => x.v, StringComparer.Ordinal);
    }

    /// <summary>The outputs by name.</summary>
    public IReadOnlyDictionary<string, OrtValue> Values => _byName;

    /// <summary>An output by name.</summary>
    public OrtValue this[string name] => _byName.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"the reference pass has no output '{name}'.");

    /// <summary>A copy of a float output.</summary>
    public float[] Floats(string name) => this[name].GetTensorDataAsSpan<float>().ToArray();

    /// <inheritdoc/>
    public void Dispose() => _values.Dispose();
}

/// <summary>
/// The frozen reference policy pi_ref of a fine-tune: the starting model in its own session, reading the frozen weights
/// the training session reads (so a LoRA fine-tune holds the base weights once). It computes only what
/// the regularizer needs: log-probabilities at the response positions (the head never runs on prompt or padding
/// positions), plus whatever a caller's extension adds, such as an activation probe's risk from the same pass.
/// </summary>
internal sealed class ReferencePolicy : IDisposable
{
    private readonly BoundSession _session;
    private readonly SharedInitializers _shared;
    private readonly Model _graph;
    private readonly SharedInitializers? _ownedShared;
    private readonly OrtValueBag _owned = new();
    private readonly string[] _outputs;
    private readonly string[] _stepInputs;
    private readonly long _vocab, _inputVocab;

    private ReferencePolicy(Model graph, BoundSession session, SharedInitializers shared, SharedInitializers? ownedShared, string[] outputs, long vocab, long inputVocab)
    {
        _graph = graph;
        _session = session;
        _shared = shared;
        _ownedShared = ownedShared;
        _outputs = outputs;
        _vocab = vocab;
        _inputVocab = inputVocab;
        _stepInputs = [.. session.Session.InputMetadata.Keys.Where(n => !TokenBatch.Provides(n) && n != ResponseNames.Index && !shared.Contains(n))];
        // The reference runs between training steps: its activations go back to the system rather than stay reserved
        // in its own arena while the step runs.
        _session.ReleaseArenaAfterRun();
    }

    /// <summary>The outputs each run returns.</summary>
    public IReadOnlyList<string> Outputs => _outputs;

    /// <summary>Inputs each run needs besides the token batch and the response index (those an extension added).</summary>
    public IReadOnlyList<string> StepInputs => _stepInputs;

    /// <summary>Builds the reference graph of <paramref name="model"/> (which is not modified) and opens its session.</summary>
    public static ReferencePolicy Create(Model model, ReferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new ReferenceOptions();
        var logits = LossGraphs.FindLogits(model);
        long vocab = logits.Shape?[-1].Value ?? throw new InvalidDataException($"output '{logits.Name}' has no known vocabulary size.");
        var graph = model.Clone("reference policy");
        var outputs = new List<string>();
        var extra = options.Extend?.Invoke(graph) ?? [];
        if (options.HiddenRows)
        {
            ResponseLosses.AppendReferenceHidden(graph, logits.Name);
            outputs.Add(ResponseNames.ReferenceHidden);
        }
        else if (options.LogProbs)
        {
            ResponseLosses.AppendReference(graph, logits.Name);
            outputs.AddRange([ResponseNames.ReferenceLogProbs, ResponseNames.ReferenceTokenLogProbs]);
        }
        outputs.AddRange(extra);
        if (outputs.Count == 0) throw new UserInputException("the reference pass would compute nothing: ask for log-probabilities or extend it.");
        foreach (var o in graph.Graph.Outputs.Where(o => !outputs.Contains(o.Name)).ToList()) graph.Graph.RemoveOutput(o);
        graph.Graph.RemoveUnusedNodes();
        SharedInitializers? owned = null;
        var shared = options.SharedWeights ?? (owned = SharedInitializers.Create(graph, []));
        try
        {
            return new ReferencePolicy(graph, shared.CreateBound(graph, options.Runtime.ForTraining()), shared, owned, [.. outputs], vocab,
                GradientSession.VocabFromEmbedding(model) ?? vocab);
        }
        catch
        {
            owned?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs the reference on a batch. <paramref name="responseIndex"/> holds the flat positions whose labels count (see
    /// <see cref="ResponseLosses.Index"/>); <paramref name="inputs"/> the extension's <see cref="StepInputs"/> (caller-owned).
    /// </summary>
    public ReferenceOutputs Run(TokenBatch batch, long[] responseIndex, IReadOnlyDictionary<string, OrtValue>? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(responseIndex);
        batch.Validate(_inputVocab, _vocab);
        foreach (var input in _session.Session.InputMetadata.Keys)
        {
            if (_shared.Contains(input)) continue; // bound once, when the session was made
            if (input == ResponseNames.Index) _session.BindInput(input, _owned.Add(input, OrtValues.Wrap(responseIndex, responseIndex.Length)));
            else if (batch.InputFor(input) is { } v) _session.BindInput(input, _owned.Add(input, v));
            else if (inputs is not null && inputs.TryGetValue(input, out var given)) _session.BindInput(input, given);
            else throw new UserInputException($"the reference pass needs the input '{input}'.");
        }
        foreach (var o in _outputs) _session.BindOutputToDevice(o);
        return new ReferenceOutputs(_outputs, _session.RunAndFetch());
    }

    /// <summary>
    /// The peak bytes of intermediate tensors (outputs included) of one reference pass on <paramref name="batch"/> with
    /// <paramref name="responseTokens"/> response positions, before it runs.
    /// </summary>
    public long EstimateActivations(TokenBatch batch, int responseTokens, IReadOnlyDictionary<string, OrtValue>? inputs = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var given = MemoryEstimate.ResponseInputShapes(responseTokens, _vocab, HiddenWidth(_graph));
        if (inputs is not null) foreach (var (name, value) in inputs) given[name] = value.GetTensorTypeAndShape().Shape;
        var shapes = MemoryEstimate.InputShapes(_session.Session.InputMetadata.Keys, batch, given);
        return MemoryEstimate.Activations(_graph, shapes, _shared.Names.ToHashSet(StringComparer.Ordinal)).Peak;
    }

    /// <summary>The width d of a graph's <see cref="ResponseNames.ReferenceHidden"/> value [N, d]; 0 when it has none.</summary>
    internal static long HiddenWidth(Model graph) =>
        graph.Graph.FindValue(ResponseNames.ReferenceHidden)?.Shape is { Rank: 2 } s && s[1].Value is { } d ? d : 0;

    /// <inheritdoc/>
    public void Dispose()
    {
        _session.Dispose();
        _owned.Dispose();
        _ownedShared?.Dispose();
    }
}
