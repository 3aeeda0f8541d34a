using System.Text.Json;
using SafeTune.Autodiff.Lora;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;

namespace SafeTune.Runtime.Tests;

/// <summary>Training trajectories against PyTorch (fixtures from tests/fixtures/make_fit.py), LoRA, checkpoints.</summary>
public sealed class TrainingSessionTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Names() => ["gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded"];

    private static (Model Model, TokenBatch Batch, JsonElement Fit) Load(string name) =>
        (Model.Load(Repo.Fixture("models", name + ".onnx")), TokenBatch.Load(Repo.Fixture("models", name + ".batch.json")),
         JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", name + ".fit.json"))).RootElement);

    private static void AssertTrajectory(IEnumerable<double> expected, IReadOnlyList<double> actual, string what)
    {
        var want = expected.ToArray();
        Assert.Equal(want.Length, actual.Count);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(actual[i] - want[i]) <= 1e-3 * Math.Abs(want[i]), $"{what} step {i + 1}: {actual[i]} vs PyTorch {want[i]}");
    }

    private static IEnumerable<double> Doubles(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble());

    [Theory]
    [MemberData(nameof(Names))]
    public void AdamW_follows_PyTorch(string name)
    {
        var (model, batch, fit) = Load(name);
        var r = Fit.Run(model, batch, new FitOptions { Steps = 5, Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 } });
        AssertTrajectory(Doubles(fit.GetProperty("adamw")), r.Losses, $"{name} AdamW");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Checkpointed_activations_follow_PyTorch_and_plan_less_activation_memory(string name)
    {
        var (model, batch, fit) = Load(name);
        var options = new FitOptions { Steps = 5, Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 } };
        var plain = Fit.Run(model, batch, options);
        var checkpointed = Fit.Run(model, batch, options with { CheckpointActivations = true });
        AssertTrajectory(Doubles(fit.GetProperty("adamw")), checkpointed.Losses, $"{name} AdamW, checkpointed");
        for (int i = 0; i < plain.Losses.Count; i++)
            Assert.True(Math.Abs(plain.Losses[i] - checkpointed.Losses[i]) <= 1e-5 * Math.Abs(plain.Losses[i]), $"step {i + 1}: {checkpointed.Losses[i]} vs {plain.Losses[i]}");
        Assert.True(checkpointed.Estimate!.ActivationBytes <= plain.Estimate!.ActivationBytes,
            $"checkpointing should not plan more activation bytes: {checkpointed.Estimate.ActivationBytes} vs {plain.Estimate.ActivationBytes}");

        var lora = options with { Lora = new LoraOptions { Rank = 4, Alpha = 8 } };
        var loraPlain = Fit.Run(model, batch, lora);
        var loraCheckpointed = Fit.Run(model, batch, lora with { CheckpointActivations = true });
        for (int i = 0; i < loraPlain.Losses.Count; i++)
            Assert.True(Math.Abs(loraPlain.Losses[i] - loraCheckpointed.Losses[i]) <= 1e-5 * Math.Abs(loraPlain.Losses[i]), $"LoRA step {i + 1}: {loraCheckpointed.Losses[i]} vs {loraPlain.Losses[i]}");
        // With the weights frozen, the blocks' activations are what the step holds: checkpointing plans fewer bytes.
        Assert.True(loraCheckpointed.Estimate!.ActivationBytes < loraPlain.Estimate!.ActivationBytes,
            $"LoRA: checkpointing should plan fewer activation bytes: {loraCheckpointed.Estimate.ActivationBytes} vs {loraPlain.Estimate.ActivationBytes}");
    }

    [Theory]
    [InlineData("llama_tiny_folded", "fp16")]
    [InlineData("llama_tiny_unfolded", "bf16")]
    [InlineData("gpt2_tiny_folded", "fp16")]
    [InlineData("gpt2_tiny_unfolded", "bf16")]
    public void Sixteen_bit_frozen_weights_train_as_their_rounded_float32_values(string name, string dtype)
    {
        // Held in 16 bits, the frozen weights must act exactly as float32 weights holding the rounded values: the same
        // losses with the reference pass (KL) and with activation checkpointing, in half the weight bytes.
        var (model, batch, _) = Load(name);
        var type = TrainingOptions.ParseBaseDtype(dtype)!.Value;
        var options = new FitOptions
        {
            Steps = 4,
            KlBeta = 0.3,
            Lora = new LoraOptions { Rank = 4, Alpha = 8 },
            Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 },
        };
        var rounded = Fit.Run(Rounded(model, type), batch, options);
        var sixteen = Fit.Run(model, batch, options with { BaseDtype = type });
        var checkpointed = Fit.Run(model, batch, options with { BaseDtype = type, CheckpointActivations = true });
        var plain = Fit.Run(model, batch, options);
        for (int i = 0; i < rounded.Losses.Count; i++)
        {
            Assert.True(Math.Abs(sixteen.Losses[i] - rounded.Losses[i]) <= 1e-5 * Math.Abs(rounded.Losses[i]), $"{dtype} step {i + 1}: {sixteen.Losses[i]} vs {rounded.Losses[i]}");
            Assert.True(Math.Abs(checkpointed.Losses[i] - rounded.Losses[i]) <= 1e-5 * Math.Abs(rounded.Losses[i]), $"{dtype} checkpointed step {i + 1}: {checkpointed.Losses[i]} vs {rounded.Losses[i]}");
        }
        // Rounding moved the weights: the loss is not the float32 model's to the last digit, but close to it.
        Assert.True(Math.Abs(sixteen.Losses[0] - plain.Losses[0]) <= 2e-2 * Math.Abs(plain.Losses[0]), $"{dtype} first loss {sixteen.Losses[0]} vs float32 {plain.Losses[0]}");
        long frozen = TrainingSession.FrozenWeights(model, []).Sum(n => model.Graph.FindInitializer(n)!.Initializer!.ElementCount);
        Assert.True(frozen > 0);
        Assert.Equal(plain.Estimate!.WeightBytes - 2 * frozen, sixteen.Estimate!.WeightBytes);
    }

    [Fact]
    public void Sixteen_bit_weights_in_device_memory_train_like_host_memory()
    {
        var (model, batch, _) = Load("llama_tiny_folded");
        var (loraModel, trainable) = WithLora(model);
        var options = new TrainingOptions { Trainable = trainable, BaseDtype = ElementType.Float16, Optimizer = new OptimizerConfig { LearningRate = 1e-2 } };
        using var host = TrainingSession.Create(loraModel, options with { DeviceResidentState = false });
        using var device = TrainingSession.Create(loraModel, options with { DeviceResidentState = true });
        Assert.Contains(host.SharedWeights.Names, n => host.SharedWeights.TypeOf(n) == ElementType.Float16);
        for (int i = 0; i < 3; i++)
        {
            foreach (var s in new[] { host, device }) s.LazyResetGrad();
            Assert.Equal(host.TrainStep(batch), device.TrainStep(batch));
            host.OptimizerStep();
            device.OptimizerStep();
        }
        foreach (var p in host.Trainable) Assert.Equal(host.GetParameter(p), device.GetParameter(p));
    }

    [Fact]
    public void Sixteen_bit_weights_are_cast_again_in_the_backward_pass()
    {
        // No float32 copy made in the forward pass may be read by the backward pass (it would live from one to the other).
        var (model, _, _) = Load("llama_tiny_folded");
        var (loraModel, trainable) = WithLora(model);
        var withLoss = loraModel.Clone("loss");
        var logits = Autodiff.Losses.LossGraphs.FindLogits(withLoss);
        var (loss, _, _) = TrainingObjective.TokenCrossEntropy.Append(withLoss, logits.Name, null);
        var stored = Onnx.Passes.SixteenBitWeights.Apply(withLoss.Graph, TrainingSession.FrozenWeights(loraModel, trainable), ElementType.Float16);
        Assert.NotEmpty(stored);
        var backward = Autodiff.BackwardBuilder.Build(withLoss, loss.Name, trainable);
        var g = backward.Model.Graph;
        int recast = 0;
        foreach (var name in stored)
        {
            var w = g.GetValue(name);
            Assert.Equal(ElementType.Float16, w.ElementType);
            foreach (var cast in w.Consumers.Where(n => n.OpType == "Cast"))
                foreach (var reader in cast.Outputs[0].Consumers)
                    Assert.False(reader.Name.StartsWith("grad/", StringComparison.Ordinal), $"{reader.Describe()} reads the forward copy of '{name}'");
            recast += w.Consumers.Count(n => n.OpType == "Reshape");
        }
        Assert.True(recast > 0, "the backward pass casts no weight again");
    }

    /// <summary>A copy of <paramref name="model"/> with rank-4 LoRA adapters (alpha 8), and the adapters' names.</summary>
    private static (Model Model, IReadOnlyList<string> Trainable) WithLora(Model model)
    {
        var copy = model.Clone("LoRA");
        var lora = new LoraPass(new LoraOptions { Rank = 4, Alpha = 8 });
        Onnx.Passes.PassRunner.Run(copy, lora);
        return (copy, lora.TrainableParameters);
    }

    private static Model Rounded(Model model, ElementType type)
    {
        var copy = model.Clone("rounded");
        foreach (var name in TrainingSession.FrozenWeights(model, []))
        {
            var v = copy.Graph.FindInitializer(name)!;
            var wide = Onnx.Passes.SixteenBitWeights.Narrow(v.Initializer!, type).ToDoubles().Select(x => (float)x).ToArray();
            copy.Graph.SetInitializer(v, TensorData.Create<float>(name, v.Initializer!.Dims, wide));
        }
        return copy;
    }

    [Theory]
    [InlineData("llama_tiny_folded", false)]
    [InlineData("llama_tiny_folded", true)]
    [InlineData("gpt2_tiny_folded", true)]
    public void Fused_head_gives_the_separate_heads_losses_and_gradients(string name, bool kl)
    {
        var (model, batch, _) = Load(name);
        var (loraModel, trainable) = WithLora(model);
        var index = Autodiff.Losses.ResponseLosses.Index(batch.Labels);
        int n = index.Length;
        var kind = kl ? Autodiff.Losses.ResponseLossKind.CrossEntropyAndKl : Autodiff.Losses.ResponseLossKind.CrossEntropy;
        (float Loss, IReadOnlyDictionary<string, float> Metrics, Dictionary<string, float[]> Grads, bool ReadsHidden) Step(bool fused)
        {
            using var session = TrainingSession.Create(loraModel, new TrainingOptions
            {
                Trainable = trainable,
                Objective = TrainingObjective.Response(kind),
                FusedHead = fused,
            });
            using var reference = kl
                ? ReferencePolicy.Create(model, new ReferenceOptions { SharedWeights = session.SharedWeights, HiddenRows = session.ReadsReferenceHidden })
                : null;
            using var refOut = reference?.Run(batch, index);
            using var owned = new OrtValueBag();
            var inputs = new Dictionary<string, Microsoft.ML.OnnxRuntime.OrtValue>
            {
                [Autodiff.Losses.ResponseNames.Index] = owned.Add("index", OrtValues.Wrap(index, n)),
                [Autodiff.Losses.ResponseNames.SftWeight] = owned.Add("sft", OrtValues.Wrap(Enumerable.Repeat(0.7f / n, n).ToArray(), n)),
            };
            if (kl)
            {
                inputs[Autodiff.Losses.ResponseNames.KlWeight] = owned.Add("kl", OrtValues.Wrap(Enumerable.Repeat(0.3f / n, n).ToArray(), n));
                var referenceInput = session.ReadsReferenceHidden ? Autodiff.Losses.ResponseNames.ReferenceHidden : Autodiff.Losses.ResponseNames.ReferenceLogProbs;
                inputs[referenceInput] = refOut![referenceInput];
            }
            // A step away from the start first, so that the model and the reference differ and the KL is not zero.
            session.TrainStep(batch, inputs);
            session.OptimizerStep();
            session.LazyResetGrad();
            float loss = session.TrainStep(batch, inputs);
            return (loss, session.Metrics, session.Trainable.ToDictionary(p => p, session.GetGradient), session.ReadsReferenceHidden);
        }
        var separate = Step(fused: false);
        var fused = Step(fused: true);
        Assert.False(separate.ReadsHidden);
        Assert.Equal(kl, fused.ReadsHidden);
        Assert.True(Math.Abs(separate.Loss - fused.Loss) <= 1e-5 * Math.Abs(separate.Loss), $"loss {fused.Loss} vs {separate.Loss}");
        foreach (var (metric, value) in separate.Metrics)
            Assert.True(Math.Abs(value - fused.Metrics[metric]) <= 1e-5 * Math.Abs(value) + 1e-7, $"{metric}: {fused.Metrics[metric]} vs {value}");
        if (kl) Assert.True(separate.Metrics[Autodiff.Losses.ResponseNames.MeanKl] > 1e-6, "the KL term should be active");
        foreach (var (p, g) in separate.Grads)
        {
            double scale = g.Max(Math.Abs);
            var f = fused.Grads[p];
            for (int i = 0; i < g.Length; i++)
                Assert.True(Math.Abs(g[i] - f[i]) <= 1e-4 * scale + 1e-9, $"{p}[{i}]: {f[i]} vs {g[i]}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Sgd_with_momentum_follows_PyTorch(string name)
    {
        var (model, batch, fit) = Load(name);
        var r = Fit.Run(model, batch, new FitOptions
        {
            Steps = 5,
            Optimizer = new OptimizerConfig { Kind = OptimizerKind.Sgd, LearningRate = 1e-2, WeightDecay = 0.01, Momentum = 0.9 },
        });
        AssertTrajectory(Doubles(fit.GetProperty("sgd")), r.Losses, $"{name} SGD");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Clipping_and_cosine_schedule_follow_PyTorch(string name)
    {
        var (model, batch, fit) = Load(name);
        var clip = fit.GetProperty("adamw_clip");
        double maxNorm = fit.GetProperty("hyperparameters").GetProperty("clip_max_norm").GetDouble();
        using (var s = TrainingSession.Create(model, new TrainingOptions { Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 } }))
        {
            var losses = new List<double>();
            var norms = new List<double>();
            for (int i = 0; i < 5; i++)
            {
                s.LazyResetGrad();
                losses.Add(s.TrainStep(batch));
                norms.Add(s.ClipGradNorm(maxNorm));
                s.OptimizerStep();
            }
            AssertTrajectory(Doubles(clip.GetProperty("losses")), losses, $"{name} clipped AdamW");
            AssertTrajectory(Doubles(clip.GetProperty("norms")), norms, $"{name} gradient norm");
        }
        var cosine = fit.GetProperty("adamw_cosine");
        var schedule = new CosineSchedule(1e-2, cosine.GetProperty("warmup").GetInt32(), 5);
        var lrs = Doubles(cosine.GetProperty("lr")).ToArray();
        for (int i = 0; i < lrs.Length; i++) Assert.True(Math.Abs(schedule.At(i) - lrs[i]) <= 1e-12, $"lr at step {i}: {schedule.At(i)} vs {lrs[i]}");
        var r = Fit.Run(model, batch, new FitOptions { Steps = 5, Optimizer = new OptimizerConfig { LearningRate = 1e-2, WeightDecay = 0.01 }, Schedule = schedule });
        AssertTrajectory(Doubles(cosine.GetProperty("losses")), r.Losses, $"{name} cosine AdamW");
    }

    [Fact]
    public void Accumulating_two_half_weighted_steps_equals_one_step()
    {
        var (model, batch, _) = Load("llama_tiny_folded");
        var options = new TrainingOptions { Optimizer = new OptimizerConfig { LearningRate = 1e-2 } };
        using var a = TrainingSession.Create(model, options);
        using var b = TrainingSession.Create(model, options);
        a.LazyResetGrad();
        a.TrainStep(batch);
        a.OptimizerStep();
        b.LazyResetGrad();
        b.TrainStep(batch, 0.5f);
        b.TrainStep(batch, 0.5f);
        b.OptimizerStep();
        foreach (var p in a.Trainable)
        {
            var x = a.GetParameter(p);
            var y = b.GetParameter(p);
            for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - y[i]) <= 1e-6, $"{p}[{i}]");
        }
        Assert.Equal(a.EvalStep(batch), b.EvalStep(batch), 5);
    }

    [Fact]
    public void Lora_trains_only_adapters_and_merges_back_into_the_same_graph()
    {
        var (model, batch, _) = Load("llama_tiny_folded");
        var original = model.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!.Bytes.ToArray());
        var r = Fit.Run(model, batch, new FitOptions
        {
            Steps = 12,
            Optimizer = new OptimizerConfig { LearningRate = 1e-2 },
            Lora = new LoraOptions { Rank = 4, Alpha = 8 },
        });
        Assert.True(r.Losses[^1] < 0.95 * r.Losses[0] && r.Losses.Zip(r.Losses.Skip(1)).All(p => p.Second < p.First), $"LoRA did not reduce the loss: {string.Join(", ", r.Losses)}");
        var ops = model.Graph.Nodes.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        var merged = r.Model.Graph.Nodes.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(ops.OrderBy(k => k.Key), merged.OrderBy(k => k.Key));
        Assert.Equal(model.Graph.Nodes.Select(n => n.Name), r.Model.Graph.Nodes.Select(n => n.Name));
        Assert.Equal(original.Keys.Order(), r.Model.Graph.Initializers.Select(v => v.Name).Order());
        int changed = r.Model.Graph.Initializers.Count(v => !v.Initializer!.Bytes.SequenceEqual(original[v.Name]));
        Assert.Equal(14, changed); // the 2 x 7 projections; embeddings, norms and the head are untouched
    }

    [Fact]
    public void Frozen_base_weights_stay_bit_identical_under_lora()
    {
        var (model, batch, _) = Load("llama_tiny_unfolded");
        var lora = Model.FromBytes(model.ToBytes());
        var pass = new LoraPass(new LoraOptions { Rank = 2, Alpha = 4 });
        Onnx.Passes.PassRunner.Run(lora, pass);
        using var s = TrainingSession.Create(lora, new TrainingOptions { Trainable = pass.TrainableParameters, Optimizer = new OptimizerConfig { LearningRate = 1e-2 } });
        for (int i = 0; i < 3; i++) { s.LazyResetGrad(); s.TrainStep(batch); s.OptimizerStep(); }
        var after = s.CurrentModel();
        foreach (var v in model.Graph.Initializers)
            Assert.True(v.Initializer!.Bytes.SequenceEqual(after.Graph.FindInitializer(v.Name)!.Initializer!.Bytes), v.Name);
        Assert.Contains(pass.Adapters, a => after.Graph.FindInitializer(a.BName)!.Initializer!.AsSpan<float>().ToArray().Any(x => x != 0));
    }

    [Fact]
    public void Cancelled_run_resumes_to_bit_identical_weights()
    {
        var (model, batch, _) = Load("gpt2_tiny_folded");
        var optimizer = new OptimizerConfig { LearningRate = 1e-2 };
        var straight = Fit.Run(model, batch, new FitOptions { Steps = 6, Optimizer = optimizer });

        var dir = _dir.File("ckpt");
        using var cts = new CancellationTokenSource();
        var progress = new Inline<FitProgress>(p => { if (p.Step == 3) cts.Cancel(); });
        var first = Fit.Run(model, batch, new FitOptions { Steps = 6, Optimizer = optimizer, CheckpointDirectory = dir }, progress, cts.Token);
        Assert.True(first.Cancelled);
        Assert.Equal(3, first.Losses.Count);
        var second = Fit.Run(model, batch, new FitOptions { Steps = 6, Optimizer = optimizer, CheckpointDirectory = dir, Resume = true });
        Assert.Equal(3, second.FirstStep);
        Assert.Equal(straight.Losses, first.Losses.Concat(second.Losses));
        foreach (var v in straight.Model.Graph.Initializers)
            Assert.True(v.Initializer!.Bytes.SequenceEqual(second.Model.Graph.FindInitializer(v.Name)!.Initializer!.Bytes), $"{v.Name} differs after resume");
    }

    [Fact]
    public void A_diverging_run_names_the_step_and_keeps_the_last_good_checkpoint()
    {
        var (model, batch, _) = Load("llama_tiny_folded");
        var dir = _dir.File("diverge");
        var e = Assert.Throws<TrainingDivergedException>(() =>
            Fit.Run(model, batch, new FitOptions { Steps = 50, Optimizer = new OptimizerConfig { Kind = OptimizerKind.Sgd, LearningRate = 1e6 }, CheckpointDirectory = dir }));
        Assert.Matches(@"^step \d+: the loss is", e.Message);
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "state.json"))).RootElement;
        int failedStep = int.Parse(e.Message.Split(':')[0]["step ".Length..]);
        Assert.Equal(failedStep - 1, state.GetProperty("step").GetInt32());
        Assert.Contains("kept", e.Message);
    }

    [Fact]
    public void Bad_options_are_named()
    {
        var (model, batch, _) = Load("llama_tiny_folded");
        Assert.Contains("learning rate", Assert.Throws<OptionException>(() => Fit.Run(model, batch, new FitOptions { Optimizer = new OptimizerConfig { LearningRate = 0 } })).Message);
        Assert.Contains("learning rate", Assert.Throws<OptionException>(() => Fit.Run(model, batch, new FitOptions { Optimizer = new OptimizerConfig { LearningRate = -1 } })).Message);
        var none = Assert.Throws<OnnxFormatException>(() => Fit.Run(model, batch, new FitOptions { Lora = new LoraOptions { Rank = 2, Pattern = "no_such_projection" } }));
        Assert.Contains("q_proj", none.Message);
    }

    private sealed class Inline<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

public sealed class ProximalPullTests
{
    [Fact]
    public void Proximal_pull_follows_the_formula_and_keeps_weights_near_the_start()
    {
        var model = Model.Load(Repo.Fixture("models", "llama_tiny_folded.onnx"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "llama_tiny_folded.batch.json"));
        const double lr = 0.05, rho = 5.0;
        var plain = new OptimizerConfig { Kind = OptimizerKind.Sgd, LearningRate = lr, Momentum = 0, WeightDecay = 0 };
        using var free = TrainingSession.Create(model, new TrainingOptions { Optimizer = plain });
        using var pulled = TrainingSession.Create(model, new TrainingOptions { Optimizer = plain with { ProximalRho = rho } });
        var p = free.Trainable[0];
        var start = free.GetParameter(p);
        // Step 1: w == w_ref, so the pull is zero and both agree exactly.
        foreach (var s in new[] { free, pulled }) { s.LazyResetGrad(); s.TrainStep(batch); s.OptimizerStep(); }
        Assert.Equal(free.GetParameter(p), pulled.GetParameter(p));
        // Step 2 on the pulled session: w2 = w1 - lr * (g1 + rho * (w1 - w0)).
        var w1 = pulled.GetParameter(p);
        pulled.LazyResetGrad();
        pulled.TrainStep(batch);
        var g1 = new float[w1.Length];
        using (var probe = TrainingSession.Create(pulled.CurrentModel(), new TrainingOptions { Optimizer = plain with { LearningRate = 1 } }))
        {
            probe.LazyResetGrad();
            probe.TrainStep(batch);
            probe.OptimizerStep(); // w - 1 * g
            var after = probe.GetParameter(p);
            for (int i = 0; i < g1.Length; i++) g1[i] = w1[i] - after[i];
        }
        pulled.OptimizerStep();
        var w2 = pulled.GetParameter(p);
        for (int i = 0; i < w2.Length; i++)
        {
            double expected = w1[i] - lr * (g1[i] + rho * (w1[i] - start[i]));
            Assert.True(Math.Abs(w2[i] - expected) <= 1e-5 + 1e-4 * Math.Abs(expected), $"{p}[{i}]: {w2[i]} vs {expected}");
        }
        for (int k = 0; k < 4; k++) foreach (var s in new[] { free, pulled }) { s.LazyResetGrad(); s.TrainStep(batch); s.OptimizerStep(); }
        double Distance(TrainingSession s) => s.Trainable.Sum(n => s.GetParameter(n).Zip(Model.Load(Repo.Fixture("models", "llama_tiny_folded.onnx")).Graph.FindInitializer(n)!.Initializer!.AsSpan<float>().ToArray()).Sum(z => (double)(z.First - z.Second) * (z.First - z.Second)));
        Assert.True(Distance(pulled) < Distance(free), "the proximal pull did not keep the weights closer to the start");
    }
}

public sealed class DeviceResidentStateTests
{
    [Fact]
    public void Allocator_backed_buffers_train_exactly_like_host_buffers()
    {
        // On the CPU provider the device path (ONNX Runtime allocations, copies through an Identity session) is the same
        // code that CUDA and DirectML use; it must give bit-identical results to the host buffers.
        var model = Model.Load(Repo.Fixture("models", "gpt2_tiny_folded.onnx"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "gpt2_tiny_folded.batch.json"));
        var optimizer = new OptimizerConfig { LearningRate = 1e-2, ProximalRho = 0.1 };
        using var host = TrainingSession.Create(model, new TrainingOptions { Optimizer = optimizer, DeviceResidentState = false });
        using var device = TrainingSession.Create(model, new TrainingOptions { Optimizer = optimizer, DeviceResidentState = true });
        for (int i = 0; i < 3; i++)
        {
            foreach (var s in new[] { host, device }) s.LazyResetGrad();
            Assert.Equal(host.TrainStep(batch), device.TrainStep(batch));
            Assert.Equal(host.ClipGradNorm(1.0), device.ClipGradNorm(1.0));
            host.OptimizerStep();
            device.OptimizerStep();
        }
        foreach (var p in host.Trainable) Assert.Equal(host.GetParameter(p), device.GetParameter(p));

        using var dir = new TempDir();
        Checkpoint.Save(device, dir.Path);
        using var restored = TrainingSession.Create(model, new TrainingOptions { Optimizer = optimizer, DeviceResidentState = true });
        Checkpoint.Load(restored, dir.Path);
        foreach (var p in host.Trainable) Assert.Equal(device.GetParameter(p), restored.GetParameter(p));
        Assert.Equal(device.EvalStep(batch), restored.EvalStep(batch));
    }
}
