using System.Text.Json;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;

namespace SafeTune.Runtime.Tests;

/// <summary>
/// Full fine-tuning trains what PyTorch trains: buffers stay frozen and tied copies are re-tied (fixtures from
/// tests/fixtures/make_buffer_fit.py and make_fit.py).
/// </summary>
public sealed class ParameterSelectionTests
{
    public static TheoryData<string> TableExports() => ["llama_tables_folded", "llama_tables_unfolded", "llama_tables_static"];

    private static readonly FitOptions AdamW = new() { Steps = 5, Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 } };

    private static JsonElement Json(string file) => JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", file))).RootElement;

    private static double[] Doubles(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetDouble())];

    private static void AssertTrajectory(double[] want, IReadOnlyList<double> got, string what)
    {
        Assert.Equal(want.Length, got.Count);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(got[i] - want[i]) <= 1e-3 * Math.Abs(want[i]), $"{what} step {i + 1}: {got[i]} vs PyTorch {want[i]}");
    }

    [Theory]
    [MemberData(nameof(TableExports))]
    public void Rotary_tables_and_masks_stay_frozen_and_the_run_follows_PyTorch(string name)
    {
        var model = Model.Load(Repo.Fixture("models", name + ".onnx"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "llama_tiny_folded.batch.json"));
        var fit = Json("llama_tables.fit.json");
        var buffers = fit.GetProperty("buffers").GetProperty(name).EnumerateArray().Select(e => e.GetString()!).ToList();
        var r = Fit.Run(model, batch, AdamW);
        AssertTrajectory(Doubles(fit.GetProperty("adamw")), r.Losses, name);
        foreach (var b in buffers)
            Assert.True(model.Graph.FindInitializer(b)!.Initializer!.Bytes.SequenceEqual(r.Model.Graph.FindInitializer(b)!.Initializer!.Bytes), $"{b} changed");
        Assert.True(r.Model.Graph.Initializers.Count(v => !v.Initializer!.Bytes.SequenceEqual(model.Graph.FindInitializer(v.Name)!.Initializer!.Bytes))
            == model.Graph.Initializers.Count() - buffers.Count, "every parameter trains");
    }

    [Fact]
    public void Training_the_buffers_leaves_PyTorch()
    {
        // The old behaviour, asked for by name: the tables train and the run leaves PyTorch's trajectory.
        var model = Model.Load(Repo.Fixture("models", "llama_tables_folded.onnx"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "llama_tiny_folded.batch.json"));
        var r = Fit.Run(model, batch, AdamW with { Selection = new ParameterSelection { TrainablePattern = "cos_cached|sin_cached|causal_mask" } });
        var torch = Doubles(Json("llama_tables.fit.json").GetProperty("adamw"));
        Assert.True(Math.Abs(r.Losses[^1] - torch[^1]) > 1e-4 * torch[^1], $"{r.Losses[^1]} vs {torch[^1]}");
        var cos = "model.layers.0.self_attn.cos_cached";
        Assert.False(model.Graph.FindInitializer(cos)!.Initializer!.Bytes.SequenceEqual(r.Model.Graph.FindInitializer(cos)!.Initializer!.Bytes));
    }

    [Fact]
    public void The_folded_tied_GPT2_follows_the_tied_run_and_stores_the_table_once()
    {
        var model = Model.Load(Repo.Fixture("models", "gpt2_tiny_folded.onnx"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "gpt2_tiny_folded.batch.json"));
        var tied = Doubles(Json("gpt2_tiny_unfolded.fit.json").GetProperty("adamw"));
        var r = Fit.Run(model, batch, AdamW);
        AssertTrajectory(tied, r.Losses, "re-tied folded GPT-2");
        Assert.Null(r.Model.Graph.FindInitializer("onnx::MatMul_288"));
        Assert.Equal("Transpose", r.Model.Graph.GetValue("onnx::MatMul_288").Producer!.OpType);
        Assert.Equal(model.Graph.Initializers.Count() - 1, r.Model.Graph.Initializers.Count());

        var untied = Json("gpt2_tiny_folded.fit.json").GetProperty("keep_untied");
        var apart = Fit.Run(model, batch, AdamW with { Selection = new ParameterSelection { KeepUntied = true } });
        AssertTrajectory(Doubles(untied.GetProperty("adamw")), apart.Losses, "--keep-untied folded GPT-2");
        Assert.NotNull(apart.Model.Graph.FindInitializer("onnx::MatMul_288"));
        // The two runs part after the first step (the check above can tell them apart).
        Assert.True(Math.Abs(r.Losses[1] - apart.Losses[1]) > 1e-3 * r.Losses[1]);
    }

    [Fact]
    public void The_session_reports_the_ties_and_gives_back_the_input_graph_with_tied_values()
    {
        var model = Model.Load(Repo.Fixture("models", "gpt2_tiny_folded.onnx"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "gpt2_tiny_folded.batch.json"));
        using var s = TrainingSession.Create(model, new TrainingOptions { Optimizer = new OptimizerConfig { LearningRate = 1e-2 } });
        Assert.Equal("onnx::MatMul_288", Assert.Single(s.Ties).Copy);
        Assert.DoesNotContain("onnx::MatMul_288", s.Trainable);
        s.LazyResetGrad();
        s.TrainStep(batch);
        s.OptimizerStep();
        var given = s.CurrentModelAsGiven();
        Assert.Equal(model.Graph.Nodes.Select(n => n.Name), given.Graph.Nodes.Select(n => n.Name));
        var wte = given.Graph.FindInitializer("transformer.wte.weight")!.Initializer!.AsSpan<float>().ToArray();
        var head = given.Graph.FindInitializer("onnx::MatMul_288")!.Initializer!.AsSpan<float>().ToArray();
        Assert.False(wte.SequenceEqual(model.Graph.FindInitializer("transformer.wte.weight")!.Initializer!.AsSpan<float>().ToArray()));
        for (int v = 0; v < 96; v++)
            for (int d = 0; d < 32; d++)
                Assert.Equal(wte[v * 32 + d], head[d * 96 + v]);
    }

    [Fact]
    public void Patterns_add_and_remove_by_name_and_bad_ones_are_named()
    {
        var model = Model.Load(Repo.Fixture("models", "llama_tables_folded.onnx"));
        var all = new ParameterSelection().Resolve(model).Trainable;
        Assert.Equal(21, all.Count);
        var frozen = new ParameterSelection { FrozenPattern = "norm" }.Resolve(model).Trainable;
        Assert.Equal(all.Where(n => !n.Contains("norm", StringComparison.Ordinal)), frozen);
        var plus = new ParameterSelection { TrainablePattern = "causal_mask", FrozenPattern = "embed" }.Resolve(model).Trainable;
        Assert.Contains("model.layers.0.self_attn.causal_mask", plus);
        Assert.DoesNotContain("model.embed_tokens.weight", plus);
        Assert.Contains("matches no float initializer", Assert.Throws<OptionException>(() => new ParameterSelection { TrainablePattern = "nothing_like_this" }.Resolve(model)).Message);
        Assert.Contains("leaves nothing to train", Assert.Throws<OptionException>(() => new ParameterSelection { FrozenPattern = "." }.Resolve(model)).Message);
        Assert.Contains("--trainable '[' is not a valid regular expression", Assert.Throws<OptionException>(() => new ParameterSelection { TrainablePattern = "[" }.Validate()).Message);
        var lora = AdamW with { Lora = new Autodiff.Lora.LoraOptions { Rank = 2 }, Selection = new ParameterSelection { FrozenPattern = "norm" } };
        Assert.Contains("--lora trains adapters only", Assert.Throws<OptionException>(lora.Validate).Message);
    }
}
