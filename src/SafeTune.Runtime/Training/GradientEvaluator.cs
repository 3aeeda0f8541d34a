using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>The loss and d loss / d parameter for one batch.</summary>
internal sealed record GradientResult(double Loss, IReadOnlyList<TensorData> Gradients, double Milliseconds);

/// <summary>
/// The token cross-entropy of a language model and its gradient with respect to every float initializer, from a
/// backward graph SafeTune derives itself, run in a plain ONNX Runtime session. The session and the parameter values
/// are created once and reused for every batch.
/// </summary>
internal sealed class GradientSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly OrtValueBag _parameters = new();
    private readonly string[] _outputNames;
    private readonly RunOptions _runOptions = new();

    private GradientSession(BackwardResult backward, InferenceSession session, long vocabSize)
    {
        Backward = backward;
        _session = session;
        VocabSize = vocabSize;
        foreach (var p in backward.Parameters) _parameters.Add(p, OrtValues.FromTensorData(backward.InitialValues[p]));
        _outputNames = [backward.LossName, .. backward.Parameters.Select(BackwardResult.GradientName)];
    }

    /// <summary>The training graph.</summary>
    public BackwardResult Backward { get; }

    /// <summary>The vocabulary size that token ids are checked against.</summary>
    public long VocabSize { get; }

    /// <summary>Builds the cross-entropy training graph of <paramref name="model"/> and opens a session for it.</summary>
    public static GradientSession Create(Model model, SessionConfig? config = null, BackwardOptions? options = null)
    {
        var logits = LossGraphs.FindLogits(model);
        long vocab = logits.Shape?[-1].Value ?? VocabFromEmbedding(model)
            ?? throw new InvalidDataException($"cannot tell the vocabulary size: output '{logits.Name}' has no known last dim.");
        var training = model.Clone("training graph");
        var loss = LossGraphs.AppendCrossEntropy(training, logits.Name);
        var parameters = training.Graph.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint()).Select(v => v.Name).ToList();
        var backward = BackwardBuilder.Build(training, loss.Name, parameters, options);
        return new GradientSession(backward, SessionFactory.Create(backward.Model, config), vocab);
    }

    /// <summary>Runs forward and backward on one batch.</summary>
    public GradientResult Run(TokenBatch batch)
    {
        batch.Validate(VocabSize);
        var sw = Stopwatch.StartNew();
        using var inputs = new OrtValueBag();
        var names = new List<string>();
        var values = new List<OrtValue>();
        foreach (var input in _session.InputMetadata.Keys)
        {
            names.Add(input);
            values.Add(_parameters.Contains(input) ? _parameters[input]
                : inputs.Add(input, batch.InputFor(input) ?? throw new InvalidDataException($"the model needs input '{input}', which a token batch does not provide.")));
        }
        using var results = _session.Run(_runOptions, names, values, _outputNames);
        double loss = results[0].GetTensorTypeAndShape().ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Double
            ? results[0].GetTensorDataAsSpan<double>()[0]
            : results[0].GetTensorDataAsSpan<float>()[0];
        var grads = new List<TensorData>(Backward.Parameters.Count);
        for (int i = 0; i < Backward.Parameters.Count; i++)
        {
            var data = Backward.InitialValues[Backward.Parameters[i]];
            grads.Add(new TensorData(data.Name, data.ElementType, data.Dims, results[i + 1].GetTensorMutableRawData().ToArray()));
        }
        return new GradientResult(loss, grads, sw.Elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// The rows of the token embedding table: a Gather on a 2-D float initializer whose indices come from the
    /// <c>input_ids</c> input (through casts and reshapes); null when there is none.
    /// </summary>
    public static long? VocabFromEmbedding(Model model)
    {
        var ids = model.Graph.Inputs.FirstOrDefault(v => v.Name == "input_ids")
            ?? model.Graph.Inputs.FirstOrDefault(v => !v.IsInitializer && v.ElementType.IsInteger());
        if (ids is null) return null;
        return model.Graph.Nodes.Where(n => n.OpType == "Gather" && n.Input(0)?.Initializer is { Dims.Length: 2 } t && t.ElementType.IsFloatingPoint()
                && n.Input(1) is { } indices && ComesFrom(indices, ids))
            .Select(n => (long?)n.Input(0)!.Initializer!.Dims[0]).FirstOrDefault();

        static bool ComesFrom(Value v, Value source)
        {
            for (int hop = 0; hop < 8; hop++)
            {
                if (ReferenceEquals(v, source)) return true;
                if (v.Producer is not { OpType: "Cast" or "Reshape" or "Squeeze" or "Unsqueeze" or "Identity" or "Flatten" } p || p.Input(0) is not { } next) return false;
                v = next;
            }
            return false;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _session.Dispose();
        _parameters.Dispose();
        _runOptions.Dispose();
    }
}

/// <summary>One-shot gradient computation: build, run once, dispose.</summary>
internal static class GradientEvaluator
{
    /// <summary>Builds the training graph, runs it once on <paramref name="batch"/> and returns the loss and gradients.</summary>
    public static GradientResult Run(Model model, TokenBatch batch, SessionConfig? config = null, BackwardOptions? options = null)
    {
        using var session = GradientSession.Create(model, config, options);
        return session.Run(batch);
    }
}
