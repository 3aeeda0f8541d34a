using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>The <see cref="ResponseLossKind.CrossEntropy"/> loss: no reference needed.</summary>
internal sealed class CrossEntropyResponseLoss : ResponseLoss
{
    public override ResponseLossKind Kind => ResponseLossKind.CrossEntropy;

    public override IReadOnlyList<string> Inputs(bool fusedHead) => [ResponseNames.Index, ResponseNames.SftWeight];

    public override ResponseFeeds Feeds(ResponseFeedSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ResponseFeeds(source.Index, new Dictionary<string, float[]>(StringComparer.Ordinal)
        {
            [ResponseNames.SftWeight] = PerToken(source, source.Weights.CrossEntropy),
        });
    }

    private protected override bool CanFuseHead => true;

    private protected override (Value, IReadOnlyList<(Value, string)>) Terms(ResponseTerms t) =>
        (t.WeightedSum(t.CrossEntropy, ResponseNames.SftWeight), [(t.CrossEntropy, ResponseNames.MeanSft)]);

    private protected override (Node, IReadOnlyList<(Value, string)>) FusedTerms(GraphBuilder b, ResponseLosses.Head head, Value rows, Value targets,
        IReadOnlyDictionary<string, Value> inputs)
    {
        var node = FusedResponseHead.Append(b, rows, head.Weight, head.Transposed, targets, inputs[ResponseNames.SftWeight]);
        return (node, [(node.Outputs[FusedResponseHead.CrossEntropyOutput], ResponseNames.MeanSft)]);
    }
}
