using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class FitCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string Model = Repo.Fixture("models", "llama_tiny_folded.onnx");
    private static readonly string Batch = Repo.Fixture("models", "llama_tiny_folded.batch.json");

    [Fact]
    public void Json_follows_the_contract_and_PyTorch()
    {
        var r = CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "5", "--optimizer", "adamw", "--lr", "1e-2", "--weight-decay", "0.01", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        var losses = json.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var torch = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", "llama_tiny_folded.fit.json"))).RootElement
            .GetProperty("adamw").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(5, losses.Length);
        for (int i = 0; i < 5; i++) Assert.True(Math.Abs(losses[i] - torch[i]) <= 1e-3 * torch[i], $"step {i + 1}: {losses[i]} vs {torch[i]}");
        Assert.True(json.GetProperty("ms_per_step").GetDouble() > 0);
        Assert.Equal(14, json.GetProperty("tokens_per_step").GetInt64());
        Assert.True(json.GetProperty("peak_rss_mb").GetDouble() > 10);
        var predicted = json.GetProperty("predicted_memory");
        Assert.True(predicted.GetProperty("total_mb").GetDouble() > predicted.GetProperty("activations_mb").GetDouble());
        Assert.True(predicted.GetProperty("activations_mb").GetDouble() > 0);
        Assert.True(predicted.GetProperty("alive_at_peak_mb").EnumerateObject().Any());
        var phases = json.GetProperty("memory").EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(["model loaded", "training graphs built, sessions open (frozen weights shared)", "trainable parameters, gradients, optimizer moments",
            "predicted peak of a step (before it runs)", "first step (activations, workspace)", "all steps"], phases);
        Assert.All(json.GetProperty("memory").EnumerateObject(), p => Assert.True(p.Value.GetProperty("rss_mb").GetDouble() > 0, p.Name));
    }

    [Fact]
    public void Kl_fit_starts_at_the_blend_and_zero_beta_is_plain_cross_entropy()
    {
        static double[] Losses(CliResult r)
        {
            Assert.True(r.ExitCode == 0, r.Stderr);
            return [.. JsonDocument.Parse(r.Stdout).RootElement.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble())];
        }
        var plain = Losses(CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "4", "--lora", "4", "--lr", "1e-2", "--json"));
        var zero = Losses(CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "4", "--lora", "4", "--lr", "1e-2", "--kl", "0", "--json"));
        var half = Losses(CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "4", "--lora", "4", "--lr", "1e-2", "--kl", "0.5", "--json"));
        for (int i = 0; i < 4; i++) Assert.True(Math.Abs(zero[i] - plain[i]) <= 1e-5 * plain[i], $"step {i + 1}: {zero[i]} vs {plain[i]}");
        // LoRA B starts at zero: the model is the reference, KL is 0 and the blend is half the cross-entropy.
        Assert.True(Math.Abs(half[0] - 0.5 * plain[0]) <= 1e-5 * plain[0], $"{half[0]} vs {0.5 * plain[0]}");
        Assert.True(half[^1] < half[0]);
        CliRunner.Run("fit", Model, "--batch", Batch, "--kl", "1.5").AssertUserError("--kl must be a beta between 0 and 1");
    }

    [Fact]
    public void Buffers_stay_frozen_ties_are_kept_and_the_choice_can_be_overridden()
    {
        static double[] Losses(CliResult r)
        {
            Assert.True(r.ExitCode == 0, r.Stderr);
            return [.. JsonDocument.Parse(r.Stdout).RootElement.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble())];
        }
        static double[] Torch(string file, params string[] path)
        {
            var e = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", file))).RootElement;
            foreach (var p in path) e = e.GetProperty(p);
            return [.. e.EnumerateArray().Select(x => x.GetDouble())];
        }
        static void Follows(double[] want, double[] got, string what)
        {
            for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) <= 1e-3 * want[i], $"{what} step {i + 1}: {got[i]} vs {want[i]}");
        }
        string[] adamw = ["--steps", "5", "--lr", "1e-2", "--weight-decay", "0.01", "--json"];
        var tables = Repo.Fixture("models", "llama_tables_unfolded.onnx");
        var trained = _dir.File("tables_trained.onnx");
        Follows(Torch("llama_tables.fit.json", "adamw"), Losses(CliRunner.Run(["fit", tables, "--batch", Batch, .. adamw, "--export", trained])), "rotary tables");
        var before = SafeTune.Onnx.Model.Load(tables);
        var after = SafeTune.Onnx.Model.Load(trained);
        foreach (var b in new[] { "cos_cached", "sin_cached", "causal_mask" }.Select(t => "model.layers.0.self_attn." + t))
            Assert.True(before.Graph.FindInitializer(b)!.Initializer!.Bytes.SequenceEqual(after.Graph.FindInitializer(b)!.Initializer!.Bytes), b);

        var gpt2 = Repo.Fixture("models", "gpt2_tiny_folded.onnx");
        var gpt2Batch = Repo.Fixture("models", "gpt2_tiny_folded.batch.json");
        Follows(Torch("gpt2_tiny_unfolded.fit.json", "adamw"), Losses(CliRunner.Run(["fit", gpt2, "--batch", gpt2Batch, .. adamw])), "tied GPT-2");
        Follows(Torch("gpt2_tiny_folded.fit.json", "keep_untied", "adamw"), Losses(CliRunner.Run(["fit", gpt2, "--batch", gpt2Batch, .. adamw, "--keep-untied"])), "--keep-untied GPT-2");

        CliRunner.Run("fit", tables, "--batch", Batch, "--frozen", "(").AssertUserError("--frozen '(' is not a valid regular expression");
        CliRunner.Run("fit", tables, "--batch", Batch, "--frozen", ".").AssertUserError("--frozen '.' leaves nothing to train");
        CliRunner.Run("fit", tables, "--batch", Batch, "--trainable", "no_such_tensor").AssertUserError("--trainable 'no_such_tensor' matches no float initializer");
        CliRunner.Run("fit", tables, "--batch", Batch, "--lora", "2", "--keep-untied").AssertUserError("do not combine with --lora");
    }

    [Fact]
    public void A_step_that_would_not_fit_stops_before_it_runs()
    {
        // The machine's memory capped at 60 MB: the tiny model's step cannot fit; nothing is trained or written.
        var checkpoints = _dir.File("ckpt");
        var r = CliRunner.Run(TimeSpan.FromMinutes(2), new Dictionary<string, string> { ["SAFETUNE_MEMORY_LIMIT_MB"] = "60" },
            "fit", Model, "--batch", Batch, "--steps", "3", "--checkpoint-dir", checkpoints, "--json");
        r.AssertUserError("a training step on this batch needs about", "GB", "stopped before the first step", "fewer or shorter rows");
        Assert.False(Directory.Exists(checkpoints) && Directory.EnumerateFileSystemEntries(checkpoints).Any());
    }

    [Fact]
    public void An_impossible_batch_for_a_real_vocabulary_is_refused_with_the_estimate()
    {
        // Qwen2.5's vocabulary (151,936) at 32 x 2048 tokens, every weight trained (so the tied head is trained and the
        // fused head, which needs a frozen one, does not apply): the logits alone are 40 GB.
        var config = new SafeTune.Models.Decoders.LlamaConfig
        {
            VocabSize = 151936, HiddenSize = 32, Layers = 1, Heads = 2, KeyValueHeads = 1, IntermediateSize = 64, TieWordEmbeddings = true,
        };
        var model = _dir.File("wide_vocab.onnx");
        SafeTune.Models.Decoders.LlamaGraph.Build(config).Save(model);
        var batch = _dir.File("huge.json");
        var ids = string.Join(",", Enumerable.Range(0, 32).Select(r => "[" + string.Join(",", Enumerable.Range(0, 2048).Select(t => (r * 31 + t * 7) % 151936)) + "]"));
        File.WriteAllText(batch, $"{{\"input_ids\": [{ids}], \"labels\": [{ids}]}}");
        var r = CliRunner.Run(TimeSpan.FromMinutes(3), "fit", model, "--batch", batch, "--steps", "1");
        r.AssertUserError("needs about", "activations", "'logits'", "more than the", "stopped before the first step", "fewer or shorter rows",
            "--checkpoint-activations", "--lora");
    }

    [Fact]
    public void Lora_fit_exports_the_original_graph()
    {
        var export = _dir.File("merged.onnx");
        var r = CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "8", "--lr", "1e-2", "--lora", "4", "--export", export, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var losses = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("losses").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.True(losses[^1] < losses[0]);
        var a = JsonDocument.Parse(CliRunner.Run("inspect", Model, "--json").Stdout).RootElement.GetProperty("ops").GetRawText();
        var b = JsonDocument.Parse(CliRunner.Run("inspect", export, "--json").Stdout).RootElement.GetProperty("ops").GetRawText();
        Assert.Equal(a, b);
    }

    [Fact]
    public void Human_output_has_a_table_and_throughput()
    {
        var r = CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "4", "--lr", "1e-2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("ms/step", r.Stdout);
        Assert.Contains("tokens/s", r.Stdout);
    }


    [Fact]
    public void Bad_learning_rates_and_options()
    {
        CliRunner.Run("fit", Model, "--batch", Batch, "--lr", "0").AssertUserError("--lr must be positive");
        CliRunner.Run("fit", Model, "--batch", Batch, "--lr", "-0.1").AssertUserError("--lr must be positive");
        CliRunner.Run("fit", Model, "--batch", Batch, "--optimizer", "adam").AssertUserError("--optimizer");
        CliRunner.Run("fit", Model, "--batch", Batch, "--resume").AssertUserError("--checkpoint-dir");
    }

    [Fact]
    public void A_lora_pattern_that_matches_nothing_lists_the_candidates()
    {
        var r = CliRunner.Run("fit", Model, "--batch", Batch, "--lora", "4", "--lora-pattern", "nothing_like_this");
        r.AssertUserError("nothing_like_this", "/model/layers.0/self_attn/q_proj/MatMul");
    }

    [Fact]
    public void A_diverging_loss_names_the_step_and_keeps_the_checkpoint()
    {
        var dir = _dir.File("ckpt");
        var r = CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "40", "--optimizer", "sgd", "--lr", "1e6", "--checkpoint-dir", dir);
        r.AssertUserError("step ", "the loss is", "last good checkpoint");
        Assert.True(File.Exists(Path.Combine(dir, "state.json")));
    }
}
