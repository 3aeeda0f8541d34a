using System.Text.Json;
using OrtValue = Microsoft.ML.OnnxRuntime.OrtValue;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;

namespace SafeTune.Runtime.Tests;

/// <summary>
/// The safety-regularized objectives (response-token CE + KL to a frozen reference, per batch and per example, and
/// constrained SFT) against PyTorch training runs (fixtures from tests/fixtures/make_safe_fit.py), and the reference
/// policy sharing the training session's frozen weights.
/// </summary>
public sealed class SafeObjectiveTests
{
    public static TheoryData<string> Names() => ["gpt2_tiny_unfolded", "llama_tiny_unfolded"];

    private static (Model Model, TokenBatch Batch, JsonElement Fit) Load(string name)
    {
        var fit = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", name + ".safefit.json"))).RootElement;
        var b = fit.GetProperty("batch");
        long[][] ids = [.. b.GetProperty("input_ids").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt64()).ToArray())];
        long[][] labels = [.. b.GetProperty("labels").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt64()).ToArray())];
        var batch = new TokenBatch([.. ids.SelectMany(r => r)], [.. labels.SelectMany(r => r)], null, ids.Length, ids[0].Length);
        return (Model.Load(Repo.Fixture("models", name + ".onnx")), batch, fit);
    }

    private static double[] Doubles(JsonElement fit, string name) => [.. fit.GetProperty(name).EnumerateArray().Select(x => x.GetDouble())];

    private static void AssertClose(double[] want, IReadOnlyList<double> got, string what, double rtol = 1e-4)
    {
        Assert.Equal(want.Length, got.Count);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(got[i] - want[i]) <= rtol * Math.Abs(want[i]) + 1e-6, $"{what} step {i + 1}: {got[i]} vs PyTorch {want[i]}");
    }

    /// <summary>Per response token: the row it belongs to and its position within that row's response.</summary>
    private static (int Row, int T)[] Tokens(TokenBatch batch)
    {
        var result = new List<(int, int)>();
        for (int r = 0; r < batch.BatchSize; r++)
        {
            int t = 0;
            for (int p = 0; p < batch.SequenceLength; p++)
                if (batch.Labels[r * batch.SequenceLength + p] != LossNames.IgnoreIndex) result.Add((r, t++));
        }
        return [.. result];
    }

    private static TrainingOptions Options(ResponseLossKind kind) => new()
    {
        Objective = TrainingObjective.Response(kind),
        Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 },
    };

    private static (List<double> Losses, List<double> Sft, List<double> Other) Run(Model model, TokenBatch batch, ResponseLossKind kind,
        Func<int, int, (float Sft, float Kl)> weights, int steps)
    {
        using var session = TrainingSession.Create(model, Options(kind));
        using var reference = ReferencePolicy.Create(model, new ReferenceOptions { SharedWeights = session.SharedWeights });
        var index = ResponseLosses.Index(batch.Labels);
        var tokens = Tokens(batch);
        float n = tokens.Length;
        var losses = new List<double>();
        var sft = new List<double>();
        var other = new List<double>();
        for (int step = 0; step < steps; step++)
        {
            using var refOut = reference.Run(batch, index);
            using var bag = new OrtValueBag();
            var inputs = new Dictionary<string, OrtValue> { [ResponseNames.Index] = bag.Add("i", OrtValues.Wrap(index, index.Length)) };
            if (kind == ResponseLossKind.Constrained)
            {
                inputs[ResponseNames.ConstrainedWeight] = bag.Add("w", OrtValues.Wrap([.. tokens.Select(_ => 1 / n)], tokens.Length));
                inputs[ResponseNames.TokenBeta] = bag.Add("b", OrtValues.Wrap([.. tokens.Select(x => x.T == 0 ? 0.5f : x.T <= 4 ? 2f : 0.1f)], tokens.Length));
                inputs[ResponseNames.ReferenceTokenLogProbs] = refOut[ResponseNames.ReferenceTokenLogProbs];
            }
            else
            {
                inputs[ResponseNames.SftWeight] = bag.Add("s", OrtValues.Wrap([.. tokens.Select(x => weights(x.Row, x.T).Sft / n)], tokens.Length));
                inputs[ResponseNames.KlWeight] = bag.Add("k", OrtValues.Wrap([.. tokens.Select(x => weights(x.Row, x.T).Kl / n)], tokens.Length));
                inputs[ResponseNames.ReferenceLogProbs] = refOut[ResponseNames.ReferenceLogProbs];
            }
            session.LazyResetGrad();
            losses.Add(session.TrainStep(batch, inputs));
            sft.Add(session.Metrics[ResponseNames.MeanSft]);
            other.Add(session.Metrics[kind == ResponseLossKind.Constrained ? ResponseNames.MeanConstrained : ResponseNames.MeanKl]);
            session.OptimizerStep();
        }
        return (losses, sft, other);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Batch_beta_KL_objective_follows_PyTorch(string name)
    {
        var (model, batch, fit) = Load(name);
        double beta = fit.GetProperty("hyperparameters").GetProperty("beta").GetDouble();
        var (losses, sft, kl) = Run(model, batch, ResponseLossKind.CrossEntropyAndKl, (_, _) => ((float)(1 - beta), (float)beta), 5);
        AssertClose(Doubles(fit, "kl_batch"), losses, $"{name} (1-b) CE + b KL");
        AssertClose(Doubles(fit, "mean_sft_kl_batch"), sft, $"{name} mean CE");
        AssertClose(Doubles(fit, "mean_kl_kl_batch"), kl, $"{name} mean KL", rtol: 1e-3);
        Assert.Equal(0, kl[0], 5); // the model starts as the reference
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Per_example_beta_follows_PyTorch(string name)
    {
        var (model, batch, fit) = Load(name);
        var betas = fit.GetProperty("hyperparameters").GetProperty("row_betas").EnumerateArray().Select(x => (float)x.GetDouble()).ToArray();
        var (losses, _, _) = Run(model, batch, ResponseLossKind.CrossEntropyAndKl, (row, _) => (1 - betas[row], betas[row]), 5);
        AssertClose(Doubles(fit, "kl_example"), losses, $"{name} per-example beta");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Constrained_SFT_follows_PyTorch(string name)
    {
        var (model, batch, fit) = Load(name);
        var (losses, sft, term) = Run(model, batch, ResponseLossKind.Constrained, (_, _) => (0, 0), 5);
        AssertClose(Doubles(fit, "constrained"), losses, $"{name} constrained SFT");
        AssertClose(Doubles(fit, "mean_sft_constrained"), sft, $"{name} mean CE");
        AssertClose(Doubles(fit, "mean_constrained_constrained"), term, $"{name} mean constrained term");
    }

    [Fact]
    public void Weighted_loss_gradient_is_the_blend_of_the_SFT_and_KL_gradients()
    {
        // grad[(1-b) SFT + b KL] = (1-b) grad SFT + b grad KL: one backward pass gives the optimizer wrapper's blend.
        var (model, batch, _) = Load("llama_tiny_unfolded");
        var index = ResponseLosses.Index(batch.Labels);
        int n = index.Length;
        // Move the model away from the reference first, so the KL gradient is not zero.
        using var session = TrainingSession.Create(model, Options(ResponseLossKind.CrossEntropyAndKl));
        using var reference = ReferencePolicy.Create(model, new ReferenceOptions { SharedWeights = session.SharedWeights });
        using var refOut = reference.Run(batch, index);
        float[] Gradient(float wSft, float wKl)
        {
            using var bag = new OrtValueBag();
            var inputs = new Dictionary<string, OrtValue>
            {
                [ResponseNames.Index] = bag.Add("i", OrtValues.Wrap(index, n)),
                [ResponseNames.SftWeight] = bag.Add("s", OrtValues.Wrap([.. Enumerable.Repeat(wSft / n, n)], n)),
                [ResponseNames.KlWeight] = bag.Add("k", OrtValues.Wrap([.. Enumerable.Repeat(wKl / n, n)], n)),
                [ResponseNames.ReferenceLogProbs] = refOut[ResponseNames.ReferenceLogProbs],
            };
            session.LazyResetGrad();
            session.TrainStep(batch, inputs);
            return [.. session.Trainable.SelectMany(p => session.GetGradient(p))];
        }
        for (int i = 0; i < 3; i++)
        {
            Gradient(1, 0);
            session.OptimizerStep();
        }
        const float beta = 0.35f;
        var blended = Gradient(1 - beta, beta);
        var sft = Gradient(1, 0);
        var kl = Gradient(0, 1);
        double scale = blended.Max(Math.Abs);
        Assert.True(kl.Max(Math.Abs) > 1e-4 * scale, "the KL gradient should not vanish once the model has moved");
        for (int i = 0; i < blended.Length; i++)
        {
            double want = (1 - beta) * sft[i] + beta * kl[i];
            Assert.True(Math.Abs(blended[i] - want) <= 1e-5 * scale, $"element {i}: {blended[i]} vs {want}");
        }
    }

    [Fact]
    public void The_reference_reads_the_training_sessions_frozen_weights()
    {
        var (model, batch, _) = Load("llama_tiny_unfolded");
        var frozen = model.Graph.Initializers.Select(v => v.Name).Where(n => n.Contains("layers.0", StringComparison.Ordinal) || n.Contains("embed", StringComparison.Ordinal)).ToHashSet();
        var trainable = model.Graph.Initializers.Where(v => v.ElementType == ElementType.Float && !frozen.Contains(v.Name)).Select(v => v.Name).ToList();
        using var session = TrainingSession.Create(model, Options(ResponseLossKind.CrossEntropyAndKl) with { Trainable = trainable });
        Assert.Contains(session.SharedWeights.Names, frozen.Contains);
        using var reference = ReferencePolicy.Create(model, new ReferenceOptions { SharedWeights = session.SharedWeights });
        // Sessions read tensor bytes where they lie, so the independent reference gets a model with bytes of its own.
        using var separate = ReferencePolicy.Create(Model.FromBytes(model.ToBytes()));
        var index = ResponseLosses.Index(batch.Labels);
        using (var a = reference.Run(batch, index))
        using (var b = separate.Run(batch, index))
            Assert.Equal(b.Floats(ResponseNames.ReferenceLogProbs), a.Floats(ResponseNames.ReferenceLogProbs));

        // The sessions read the shared buffer itself, not a copy: change the embedding table in place and the
        // reference's output moves (the embedding is gathered, never prepacked).
        var embed = session.SharedWeights.Names.Single(n => n.Contains("embed", StringComparison.Ordinal));
        var span = session.SharedWeights[embed].GetTensorMutableDataAsSpan<float>();
        for (int i = 0; i < span.Length; i++) span[i] *= 2;
        using (var a = reference.Run(batch, index))
        using (var b = separate.Run(batch, index))
            Assert.NotEqual(b.Floats(ResponseNames.ReferenceLogProbs), a.Floats(ResponseNames.ReferenceLogProbs));
    }

    [Fact]
    public void The_response_gather_runs_the_head_on_response_rows_only()
    {
        var (model, _, _) = Load("llama_tiny_unfolded");
        var copy = Model.FromBytes(model.ToBytes());
        var head = LossGraphs.FindLogits(copy).Producer!;
        ResponseLosses.GatherResponseLogits(copy);
        Assert.Null(copy.Graph.FindValue("logits"));
        var matmul = copy.Graph.GetValue(ResponseNames.Logits).Producer!.Input(0)!.Producer!;
        Assert.Equal("MatMul", matmul.OpType);
        Assert.Equal("Gather", matmul.Input(0)!.Producer!.OpType);
        Assert.DoesNotContain(copy.Graph.Nodes, n => ReferenceEquals(n, head));
    }

    [Fact]
    public void An_unexpected_step_input_is_named()
    {
        var (model, batch, _) = Load("llama_tiny_unfolded");
        using var session = TrainingSession.Create(model, Options(ResponseLossKind.CrossEntropy));
        Assert.Equal([ResponseNames.Index, ResponseNames.SftWeight], session.StepInputs);
        var index = ResponseLosses.Index(batch.Labels);
        int n = index.Length;
        using var feeds = new StepFeeds(session, ResponseLoss.CrossEntropy.Feeds(new ResponseFeedSource(index, TokenWeights.Fixed(0, n))), null);
        using var bag = new OrtValueBag();
        var inputs = new Dictionary<string, OrtValue>(feeds.Values) { [ResponseNames.KlWeight] = bag.Add("k", OrtValues.Wrap(new float[n], n)) };
        var e = Assert.Throws<UserInputException>(() => session.TrainStep(batch, inputs));
        Assert.Contains($"'{ResponseNames.KlWeight}'", e.Message);
        Assert.True(float.IsFinite(session.TrainStep(batch, feeds.Values)));
    }

    [Fact]
    public void A_missing_step_input_is_named()
    {
        var (model, batch, _) = Load("llama_tiny_unfolded");
        using var session = TrainingSession.Create(model, Options(ResponseLossKind.CrossEntropyAndKl));
        var e = Assert.Throws<UserInputException>(() => session.TrainStep(batch));
        Assert.Contains(ResponseNames.ReferenceLogProbs, e.Message);
        Assert.Contains(ResponseNames.KlWeight, e.Message);
    }
}
