using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.Training.Data;

namespace SafeTune.Training.Evaluation;

/// <summary>The mean token cross-entropy of reference responses and the number of tokens it averages over.</summary>
/// <param name="Loss">Mean cross-entropy (nats) per response token.</param>
/// <param name="Tokens">Response tokens counted.</param>
internal readonly record struct LossResult(double Loss, long Tokens)
{
    /// <summary>exp(<see cref="Loss"/>).</summary>
    public double Perplexity => Math.Exp(Loss);
}

/// <summary>
/// The cross-entropy of reference responses given their prompts: the model with
/// <see cref="LossGraphs.AppendCrossEntropy"/> on its logits, run forward only (no gradients) in an ONNX Runtime session.
/// Works on plain decoder graphs and on key/value-cache graphs (fed an empty past). Owns its session.
/// </summary>
internal sealed class ResponseLossSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();
    private readonly string _output;

    /// <summary>Builds the loss graph of <paramref name="model"/> (which is not changed) and opens a session.</summary>
    public ResponseLossSession(Model model, SessionConfig? config = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var logits = LossGraphs.FindLogits(model);
        var graph = model.Clone("response loss graph");
        _output = LossGraphs.AppendCrossEntropy(graph, logits.Name).Name;
        _session = SessionFactory.Create(graph, config);
    }

    /// <summary>
    /// The token-weighted mean loss over every response token of <paramref name="examples"/>, in batches of up to
    /// <paramref name="batchSize"/> rows of similar length, padded on the right.
    /// </summary>
    public LossResult Measure(IReadOnlyList<TokenizedExample> examples, int batchSize = 16, Action<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var order = Enumerable.Range(0, examples.Count).OrderBy(i => examples[i].Ids.Length).ToArray();
        double sum = 0;
        long tokens = 0;
        for (int start = 0; start < order.Length; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = order.Skip(start).Take(batchSize).Select(i => examples[i]).ToList();
            var batch = Pack(chunk);
            int count = chunk.Sum(e => e.ResponseTokens);
            if (count > 0)
            {
                sum += Run(batch) * count;
                tokens += count;
            }
            progress?.Invoke(chunk.Count);
        }
        return new LossResult(tokens == 0 ? double.NaN : sum / tokens, tokens);
    }

    /// <summary>The mean cross-entropy over the counted labels of one batch (0 when none count).</summary>
    public double Run(TokenBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var names = new List<string>();
        var values = new List<OrtValue>();
        try
        {
            foreach (var (name, meta) in _session.InputMetadata)
            {
                names.Add(name);
                if (batch.InputFor(name) is { } v) values.Add(v);
                else if (name.StartsWith("past_key_values.", StringComparison.Ordinal) && meta.Dimensions.Length == 4)
                    values.Add(OrtValues.Zeros(ElementType.Float, batch.BatchSize, meta.Dimensions[1], 0, meta.Dimensions[3]));
                else throw new InvalidDataException($"the model needs input '{name}', which a token batch does not provide.");
            }
            using var outputs = _session.Run(_run, names, values, [_output]);
            var t = outputs[0].GetTensorTypeAndShape().ElementDataType;
            return t == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Double
                ? outputs[0].GetTensorDataAsSpan<double>()[0]
                : outputs[0].GetTensorDataAsSpan<float>()[0];
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Right-padded rows with response-only labels and an attention mask.</summary>
    internal static TokenBatch Pack(IReadOnlyList<TokenizedExample> rows)
    {
        int b = rows.Count, t = rows.Max(r => r.Ids.Length);
        var ids = new long[b * t];
        var labels = new long[b * t];
        var mask = new long[b * t];
        Array.Fill(labels, LossNames.IgnoreIndex);
        for (int r = 0; r < b; r++)
        {
            var l = rows[r].Labels();
            for (int k = 0; k < rows[r].Ids.Length; k++)
            {
                ids[r * t + k] = rows[r].Ids[k];
                labels[r * t + k] = l[k];
                mask[r * t + k] = 1;
            }
        }
        return new TokenBatch(ids, labels, mask, b, t);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _session.Dispose();
        _run.Dispose();
    }
}
