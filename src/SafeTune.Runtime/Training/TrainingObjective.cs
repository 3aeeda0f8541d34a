using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;

namespace SafeTune.Runtime.Training;

/// <summary>
/// The loss a <see cref="TrainingSession"/> minimizes, appended to the forward graph so that the backward builder
/// differentiates it like any other op. Inputs the loss adds besides the token batch (weights, reference
/// log-probabilities) are fed to every <see cref="TrainingSession.TrainStep(TokenBatch, IReadOnlyDictionary{string, Microsoft.ML.OnnxRuntime.OrtValue}?, float)"/>.
/// </summary>
internal abstract class TrainingObjective
{
    /// <summary>The mean token cross-entropy over the labels other than -100 (every position's logits are computed).</summary>
    public static TrainingObjective TokenCrossEntropy { get; } = new TokenCrossEntropyObjective();

    /// <summary>A response-token loss (see <see cref="ResponseLosses"/>): the head runs on the response positions only.</summary>
    public static TrainingObjective Response(ResponseLossKind kind) => new ResponseObjective(kind);

    /// <summary>A short name for logs.</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Appends the loss to <paramref name="model"/> (a private copy); returns the loss and the logging outputs.
    /// <paramref name="trainable"/> names the trained initializers when the caller allows the fused head
    /// (<see cref="FusedResponseHead"/>), which is used where the head weight is not among them; null keeps the head apart.
    /// </summary>
    internal abstract (Value Loss, IReadOnlyList<string> Metrics) Append(Model model, string logits, IReadOnlySet<string>? trainable);

    /// <summary>The head of <paramref name="model"/> when the fused head can replace it: a MatMul by a frozen initializer.</summary>
    private protected static ResponseLosses.Head? FrozenHead(Model model, string logits, IReadOnlySet<string>? trainable) =>
        trainable is not null && ResponseLosses.FindHead(model, logits) is { Weight.IsInitializer: true } head && !trainable.Contains(head.Weight.Name)
            ? head
            : null;

    /// <inheritdoc/>
    public override string ToString() => Name;

    private sealed class TokenCrossEntropyObjective : TrainingObjective
    {
        public override string Name => "token cross-entropy";

        internal override (Value, IReadOnlyList<string>) Append(Model model, string logits, IReadOnlySet<string>? trainable) =>
            (FrozenHead(model, logits, trainable) is { } head
                ? ResponseLosses.AppendTokenCrossEntropyFused(model, head, logits)
                : LossGraphs.AppendCrossEntropy(model, logits), []);
    }

    private sealed class ResponseObjective(ResponseLossKind kind) : TrainingObjective
    {
        public override string Name => $"response {kind}";

        internal override (Value, IReadOnlyList<string>) Append(Model model, string logits, IReadOnlySet<string>? trainable)
        {
            var graph = ResponseLosses.Append(model, kind, logits, fuseHead: FrozenHead(model, logits, trainable) is not null);
            return (graph.Loss, graph.Metrics);
        }
    }
}
