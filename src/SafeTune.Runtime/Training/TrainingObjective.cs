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

    /// <summary>A response-token loss (see <see cref="ResponseLoss"/>): the head runs on the response positions only.</summary>
    public static TrainingObjective Response(ResponseLossKind kind) => new ResponseObjective(ResponseLoss.Of(kind));

    /// <summary>A short name for logs.</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Appends the loss to <paramref name="model"/> (a private copy); returns the loss, the logging outputs and the
    /// inputs every step is fed besides the token batch. <paramref name="trainable"/> names the trained initializers when the caller allows the fused head
    /// (<see cref="FusedResponseHead"/>), which is used where the head weight is not among them; null keeps the head apart.
    /// </summary>
    internal abstract ResponseLossGraph Append(Model model, string logits, IReadOnlySet<string>? trainable);

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

        internal override ResponseLossGraph Append(Model model, string logits, IReadOnlySet<string>? trainable) =>
            new(FrozenHead(model, logits, trainable) is { } head
                ? ResponseLosses.AppendTokenCrossEntropyFused(model, head, logits)
                : LossGraphs.AppendCrossEntropy(model, logits), [], []);
    }

    private sealed class ResponseObjective(ResponseLoss loss) : TrainingObjective
    {
        public override string Name => $"response {loss.Kind}";

        internal override ResponseLossGraph Append(Model model, string logits, IReadOnlySet<string>? trainable) =>
            loss.Append(model, logits, fuseHead: FrozenHead(model, logits, trainable) is not null);
    }
}
