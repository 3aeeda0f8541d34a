using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>The loss and d loss / d parameter for one batch.</summary>
public sealed record GradientResult(float Loss, IReadOnlyList<TensorData> Gradients, double Milliseconds);

/// <summary>
/// Computes the token cross-entropy of a language model on a batch and its gradient with respect to every float
/// initializer, with a backward graph SafeTune derives itself and runs in a plain ONNX Runtime session.
/// </summary>
public static class GradientEvaluator
{
    /// <summary>Builds the training graph, runs it once on <paramref name="batch"/> and returns the loss and gradients.</summary>
    public static GradientResult Run(Model model, TokenBatch batch, SessionConfig? config = null, BackwardOptions? options = null)
    {
        var logits = FindLogits(model);
        long vocab = logits.Shape?[-1].Value ?? VocabFromEmbedding(model)
            ?? throw new InvalidDataException($"cannot tell the vocabulary size: output '{logits.Name}' has no known last dim.");
        batch.Validate(vocab);
        var training = Model.FromBytes(model.ToBytes(), displayName: "training graph");
        var loss = LossGraphs.AppendCrossEntropy(training, logits.Name);
        var parameters = training.Graph.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint()).Select(v => v.Name).ToList();
        var backward = BackwardBuilder.Build(training, loss.Name, parameters, options);

        var sw = Stopwatch.StartNew();
        using var session = SessionFactory.Create(backward.Model, config);
        using var values = new OrtValueBag();
        var feeds = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        foreach (var input in session.InputMetadata.Keys)
        {
            var v = input switch
            {
                "input_ids" => OrtValues.Wrap(batch.InputIds, shape),
                LossNames.Labels => OrtValues.Wrap(batch.Labels, shape),
                "attention_mask" => OrtValues.Wrap(batch.AttentionMask ?? [.. Enumerable.Repeat(1L, batch.InputIds.Length)], shape),
                "token_type_ids" => OrtValues.Wrap(new long[batch.InputIds.Length], shape),
                "position_ids" => OrtValues.Wrap([.. Enumerable.Range(0, batch.InputIds.Length).Select(i => (long)(i % batch.SequenceLength))], shape),
                _ when backward.InitialValues.TryGetValue(input, out var data) => OrtValues.FromTensorData(data),
                _ => throw new InvalidDataException($"the model needs input '{input}', which a token batch does not provide."),
            };
            feeds[input] = values.Add(input, v);
        }
        var outputNames = new[] { backward.LossName }.Concat(backward.Parameters.Select(BackwardResult.GradientName)).ToArray();
        using var results = session.Run(new RunOptions(), feeds.Keys.ToArray(), feeds.Values.ToArray(), outputNames);
        float lossValue = results[0].GetTensorDataAsSpan<float>()[0];
        var grads = new List<TensorData>(backward.Parameters.Count);
        for (int i = 0; i < backward.Parameters.Count; i++)
        {
            var p = backward.Parameters[i];
            var data = backward.InitialValues[p];
            grads.Add(new TensorData(p, data.ElementType, data.Dims, results[i + 1].GetTensorMutableRawData().ToArray()));
        }
        return new GradientResult(lossValue, grads, sw.Elapsed.TotalMilliseconds);
    }

    /// <summary>The logits output: one named <c>logits</c>, else the first float output of rank 3.</summary>
    public static Value FindLogits(Model model) =>
        model.Graph.Outputs.FirstOrDefault(o => o.Name == "logits")
        ?? model.Graph.Outputs.FirstOrDefault(o => o.ElementType == ElementType.Float && o.Shape?.Rank == 3)
        ?? throw new InvalidDataException("the model has no 'logits' output (float [batch, sequence, vocab]).");

    private static long? VocabFromEmbedding(Model model) =>
        model.Graph.Nodes.Where(n => n.OpType == "Gather" && n.Input(0)?.Initializer is { Dims.Length: 2 })
            .Select(n => (long?)n.Input(0)!.Initializer!.Dims[0]).FirstOrDefault();
}
