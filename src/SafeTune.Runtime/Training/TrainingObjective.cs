using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>
/// The loss a <see cref="TrainingSession"/> minimizes, appended to the forward graph so that the backward builder
/// differentiates it like any other op. Inputs the loss adds besides the token batch (weights, reference
/// log-probabilities) are fed to every <see cref="TrainingSession.TrainStep(TokenBatch, IReadOnlyDictionary{string, Microsoft.ML.OnnxRuntime.OrtValue}?, float)"/>.
/// </summary>
public abstract class TrainingObjective
{
    /// <summary>The mean token cross-entropy over the labels other than -100 (every position's logits are computed).</summary>
    public static TrainingObjective TokenCrossEntropy { get; } = new TokenCrossEntropyObjective();

    /// <summary>A response-token loss (see <see cref="ResponseLosses"/>): the head runs on the response positions only.</summary>
    public static TrainingObjective Response(ResponseLossKind kind) => new ResponseObjective(kind);

    /// <summary>A short name for logs.</summary>
    public abstract string Name { get; }

    /// <summary>Appends the loss to <paramref name="model"/> (a private copy); returns the loss and the logging outputs.</summary>
    internal abstract (Value Loss, IReadOnlyList<string> Metrics) Append(Model model, string logits);

    /// <inheritdoc/>
    public override string ToString() => Name;

    private sealed class TokenCrossEntropyObjective : TrainingObjective
    {
        public override string Name => "token cross-entropy";

        internal override (Value, IReadOnlyList<string>) Append(Model model, string logits) => (LossGraphs.AppendCrossEntropy(model, logits), []);
    }

    private sealed class ResponseObjective(ResponseLossKind kind) : TrainingObjective
    {
        public override string Name => $"response {kind}";

        internal override (Value, IReadOnlyList<string>) Append(Model model, string logits)
        {
            var graph = ResponseLosses.Append(model, kind, logits);
            return (graph.Loss, graph.Metrics);
        }
    }
}
