using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Runtime;

namespace SafeTune.Autodiff.Tests;

/// <summary>
/// The fused head (head + response loss in chunks, gradient computed in the forward pass) against the same loss built from
/// separate ops (MatMul, LogSoftmax, GatherElements: rules checked by finite differences), on a model whose hidden states
/// are trained: losses, logged terms and the hidden states' gradient agree, for every chunking.
/// </summary>
public sealed class FusedResponseHeadTests
{
    private const int B = 2, T = 9, D = 6, V = 11;
    private static readonly long[] Labels =
    [
        3, -100, 7, 0, 10, 10, -100, 2, 5,
        -100, -100, 1, 9, 4, 4, 8, -100, 6,
    ];

    private static float[] Random(int seed, int count, double scale = 1)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale))];
    }

    /// <summary>hidden = tanh(H) (B, T, D); logits = hidden x W, or hidden x E^T for a tied table E (V, D).</summary>
    private static Model LanguageModel(bool tied)
    {
        var b = GraphBuilder.ForNewModel(17);
        var h = b.Parameter("H", Random(1, B * T * D, 2), B, T, D);
        var hidden = b.Tanh(h);
        var head = tied
            ? b.Transpose(b.Parameter("E", Random(2, V * D, 1.5), V, D), 1, 0)
            : b.Parameter("W", Random(2, D * V, 1.5), D, V);
        b.Output(b.MatMul(hidden, head), "logits");
        return b.Model!;
    }

    private static float[] HeadWeightDxV(Model model)
    {
        var g = model.Graph;
        if (g.FindInitializer("W") is { } w) return w.Initializer!.AsSpan<float>().ToArray();
        var e = g.FindInitializer("E")!.Initializer!.AsSpan<float>().ToArray();
        var t = new float[D * V];
        for (int v = 0; v < V; v++) for (int d = 0; d < D; d++) t[d * V + v] = e[v * D + d];
        return t;
    }

    private static Dictionary<string, double[]> Run(Model model, IReadOnlyDictionary<string, TensorData> feeds, params string[] outputs)
    {
        using var session = SessionFactory.Create(model);
        using var bag = new OrtValueBag();
        var names = session.InputMetadata.Keys.ToList();
        var values = names.Select(n => bag.Add(n, OrtValues.FromTensorData(feeds[n]))).ToList();
        using var results = session.Run(new RunOptions(), names, values, outputs);
        return outputs.Select((o, i) => (o, GradientCheck.ReadDoubles(results[i]))).ToDictionary(x => x.o, x => x.Item2);
    }

    [Theory]
    [InlineData(ResponseLossKind.CrossEntropy, false, 4)]
    [InlineData(ResponseLossKind.CrossEntropy, true, 5)]
    [InlineData(ResponseLossKind.CrossEntropyAndKl, false, 3)]
    [InlineData(ResponseLossKind.CrossEntropyAndKl, true, 4)]
    [InlineData(ResponseLossKind.CrossEntropyAndKl, true, 1)]
    [InlineData(ResponseLossKind.CrossEntropyAndKl, false, null)]
    public void Fused_response_loss_matches_the_separate_ops_in_loss_terms_and_gradient(ResponseLossKind kind, bool tied, int? chunkRows)
    {
        var index = ResponseLosses.Index(Labels);
        int n = index.Length;
        var sft = Random(10, n).Select(x => Math.Abs(x) + 0.1f).ToArray();
        var kl = Random(11, n).Select(x => Math.Abs(x) + 0.1f).ToArray();
        var refRows = Random(12, n * D, 1.5);

        var separate = LanguageModel(tied);
        var separateLoss = ResponseLoss.Of(kind).Append(separate, fuseHead: false);
        var fused = LanguageModel(tied);
        var fusedLoss = ResponseLoss.Of(kind).Append(fused, fuseHead: true);
        Assert.Contains(fused.Graph.Nodes, FusedResponseHead.Is);
        Assert.DoesNotContain(fused.Graph.Nodes, x => x.OpType == "LogSoftmax");
        Assert.Equal(separateLoss.Metrics, fusedLoss.Metrics);

        var separateBackward = BackwardBuilder.Build(separate, separateLoss.Loss.Name, ["H"]);
        var fusedBackward = BackwardBuilder.Build(fused, fusedLoss.Loss.Name, ["H"]);
        Assert.Equal(1, FusedResponseHead.Lower(fusedBackward.Model, chunkRows));
        Assert.DoesNotContain(fusedBackward.Model.Graph.AllNodes(), FusedResponseHead.Is);

        // The reference's log-probabilities for the separate ops, from the same hidden rows and head.
        var w = HeadWeightDxV(separate);
        var refLogProbs = new float[n * V];
        for (int r = 0; r < n; r++)
        {
            var z = new double[V];
            for (int v = 0; v < V; v++) for (int d = 0; d < D; d++) z[v] += (double)refRows[r * D + d] * w[d * V + v];
            double m = z.Max(), lse = m + Math.Log(z.Sum(x => Math.Exp(x - m)));
            for (int v = 0; v < V; v++) refLogProbs[r * V + v] = (float)(z[v] - lse);
        }
        var common = new Dictionary<string, TensorData>
        {
            ["H"] = separateBackward.InitialValues["H"],
            [LossNames.Labels] = TensorData.Create<long>(LossNames.Labels, [B, T], Labels),
            [ResponseNames.Index] = TensorData.Create<long>(ResponseNames.Index, [n], index),
            [ResponseNames.SftWeight] = TensorData.Create<float>(ResponseNames.SftWeight, [n], sft),
            [ResponseNames.KlWeight] = TensorData.Create<float>(ResponseNames.KlWeight, [n], kl),
            [ResponseNames.ReferenceLogProbs] = TensorData.Create<float>(ResponseNames.ReferenceLogProbs, [n, V], refLogProbs),
            [ResponseNames.ReferenceHidden] = TensorData.Create<float>(ResponseNames.ReferenceHidden, [n, D], refRows),
        };
        string[] outputs = [LossNames.Total, .. separateLoss.Metrics, BackwardResult.GradientName("H")];
        var expected = Run(separateBackward.Model, common, outputs);
        var actual = Run(fusedBackward.Model, common, outputs);
        foreach (var o in outputs) GradientCheck.AssertClose(expected[o], actual[o], 2e-6, o);
        Assert.True(expected[BackwardResult.GradientName("H")].Any(x => Math.Abs(x) > 1e-3), "the gradient should not vanish");

        // Without the gradient (an evaluation graph) the lowered loop skips the gradient rows and gives the same loss.
        var eval = LanguageModel(tied);
        ResponseLoss.Of(kind).Append(eval, fuseHead: true);
        FusedResponseHead.Lower(eval, chunkRows);
        var evaluated = Run(eval, common.Where(kv => kv.Key != "H").ToDictionary(), [LossNames.Total, .. separateLoss.Metrics]);
        GradientCheck.AssertClose(expected[LossNames.Total], evaluated[LossNames.Total], 2e-6, "evaluation loss");
    }

    [Theory]
    [InlineData(false, 2)]
    [InlineData(true, 7)]
    public void Fused_token_cross_entropy_matches_the_mean_over_labelled_positions(bool tied, int chunkRows)
    {
        var separate = LanguageModel(tied);
        var separateLoss = LossGraphs.AppendCrossEntropy(separate);
        var fused = LanguageModel(tied);
        var fusedLoss = ResponseLosses.AppendTokenCrossEntropyFused(fused, ResponseLosses.FindHead(fused)!);
        Assert.Equal(separateLoss.Name, fusedLoss.Name);
        var separateBackward = BackwardBuilder.Build(separate, separateLoss.Name, ["H"]);
        var fusedBackward = BackwardBuilder.Build(fused, fusedLoss.Name, ["H"]);
        FusedResponseHead.Lower(fusedBackward.Model, chunkRows);
        var feeds = new Dictionary<string, TensorData>
        {
            ["H"] = separateBackward.InitialValues["H"],
            [LossNames.Labels] = TensorData.Create<long>(LossNames.Labels, [B, T], Labels),
        };
        string[] outputs = [LossNames.Sft, BackwardResult.GradientName("H")];
        var expected = Run(separateBackward.Model, feeds, outputs);
        var actual = Run(fusedBackward.Model, feeds, outputs);
        foreach (var o in outputs) GradientCheck.AssertClose(expected[o], actual[o], 2e-6, o);

        // Every label ignored: the loss and the gradient are 0, as with the separate ops.
        feeds[LossNames.Labels] = TensorData.Create<long>(LossNames.Labels, [B, T], [.. Enumerable.Repeat(LossNames.IgnoreIndex, B * T)]);
        var none = Run(fusedBackward.Model, feeds, outputs);
        Assert.Equal(0, none[LossNames.Sft][0]);
        Assert.All(none[BackwardResult.GradientName("H")], x => Assert.Equal(0, x));
    }

    [Theory]
    [InlineData(ResponseLossKind.CrossEntropy, false)]
    [InlineData(ResponseLossKind.CrossEntropy, true)]
    [InlineData(ResponseLossKind.CrossEntropyAndKl, false)]
    [InlineData(ResponseLossKind.CrossEntropyAndKl, true)]
    [InlineData(ResponseLossKind.Constrained, false)]
    [InlineData(ResponseLossKind.Constrained, true)]
    public void Each_loss_adds_the_inputs_it_declares_and_feeds_all_but_the_references(ResponseLossKind kind, bool fuseHead)
    {
        var model = LanguageModel(tied: false);
        var before = model.Graph.Inputs.Select(v => v.Name).ToHashSet();
        var loss = ResponseLoss.Of(kind);
        var graph = loss.Append(model, fuseHead: fuseHead);
        Assert.Equal(kind, loss.Kind);
        var added = model.Graph.Inputs.Where(v => !v.IsInitializer && !before.Contains(v.Name) && v.Name != LossNames.Labels).Select(v => v.Name);
        Assert.Equal(graph.Inputs, added);
        Assert.Equal(fuseHead && kind != ResponseLossKind.Constrained, model.Graph.Nodes.Any(FusedResponseHead.Is));

        var feeds = loss.Feeds(new ResponseFeedSource([1, 4, 12], TokenWeights.PerToken(i => 0.25 * i, 6), i => 1.5));
        string[] references = [ResponseNames.ReferenceLogProbs, ResponseNames.ReferenceHidden, ResponseNames.ReferenceTokenLogProbs];
        Assert.Equal(graph.Inputs.Where(n => !references.Contains(n)).Order(), new[] { ResponseNames.Index }.Concat(feeds.Floats.Keys).Order());
        Assert.All(feeds.Floats.Values, v => Assert.Equal(3, v.Length));
        float inv = 1f / 6;
        if (feeds.Floats.TryGetValue(ResponseNames.SftWeight, out var sft)) Assert.Equal([1f * inv, 0.75f * inv, 0.5f * inv], sft);
    }

    [Fact]
    public void The_fused_head_refuses_to_differentiate_its_head_weight()
    {
        var model = LanguageModel(tied: false);
        var loss = ResponseLoss.CrossEntropy.Append(model, fuseHead: true);
        var e = Assert.Throws<GradientException>(() => BackwardBuilder.Build(model, loss.Loss.Name, ["H", "W"]));
        Assert.Contains("'W'", e.Message);
    }
}
