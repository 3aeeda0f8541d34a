using System.Text.Json;
using SafeTune.Models.Decoders;
using SafeTune.Models.HuggingFace;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;

namespace SafeTune.Models.Tests;

/// <summary>Hugging Face checkpoints (tests/fixtures/make_hf_checkpoints.py) exported to ONNX and checked against PyTorch.</summary>
public sealed class HfExportTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Checkpoints() => ["gpt2", "gpt2_prefixed", "llama", "llama_tied_bf16", "qwen2", "llama_sharded"];

    private static JsonElement Reference(string name) =>
        JsonDocument.Parse(File.ReadAllText(Repo.Fixture("hf", name, "reference.json"))).RootElement;

    private static long[] Flat(JsonElement rows) => [.. rows.EnumerateArray().SelectMany(r => r.EnumerateArray()).Select(x => x.GetInt64())];

    [Theory]
    [MemberData(nameof(Checkpoints))]
    public void Exported_logits_loss_and_gradients_match_PyTorch(string name)
    {
        var reference = Reference(name);
        var model = HfExporter.Export(Repo.Fixture("hf", name));
        Assert.All(model.Graph.Nodes, n => Assert.Equal("", n.Domain));
        var ids = Flat(reference.GetProperty("input_ids"));
        var labels = Flat(reference.GetProperty("labels"));
        int b = reference.GetProperty("input_ids").GetArrayLength(), t = ids.Length / b;

        using (var session = SessionFactory.Create(model))
        {
            using var input = OrtValues.Wrap(ids, b, t);
            using var output = session.Run(new Microsoft.ML.OnnxRuntime.RunOptions(), ["input_ids"], [input], ["logits"]);
            var logits = output[0].GetTensorDataAsSpan<float>();
            var want = reference.GetProperty("logits").EnumerateArray().Select(x => x.GetSingle()).ToArray();
            Assert.Equal(want.Length, logits.Length);
            double worst = 0;
            for (int i = 0; i < want.Length; i++) worst = Math.Max(worst, Math.Abs(logits[i] - want[i]));
            Assert.True(worst <= 1e-4, $"{name}: logits differ by {worst:E2}");
        }

        var result = GradientEvaluator.Run(model, new TokenBatch(ids, labels, null, b, t));
        double loss = reference.GetProperty("loss").GetDouble();
        Assert.True(Math.Abs(result.Loss - loss) <= 1e-5 * loss, $"{name}: loss {result.Loss} vs PyTorch {loss}");
        var grads = result.Gradients.ToDictionary(g => g.Name);
        foreach (var g in reference.GetProperty("grads").EnumerateObject())
        {
            var mine = grads[g.Name].ToDoubles();
            var want = g.Value.EnumerateArray().Select(x => x.GetDouble()).ToArray();
            double scale = want.Max(Math.Abs), diff = 0;
            for (int i = 0; i < want.Length; i++) diff = Math.Max(diff, Math.Abs(mine[i] - want[i]));
            Assert.True(diff <= 1e-3 * scale, $"{name}: d loss / d {g.Name} differs by {diff:E2} (max {scale:E2})");
        }
        foreach (var g in reference.GetProperty("grads_max_abs").EnumerateObject())
            if (grads.TryGetValue(g.Name, out var mine))
                Assert.True(Math.Abs(mine.ToDoubles().Max(Math.Abs) - g.Value.GetDouble()) <= 1e-3 * g.Value.GetDouble() + 1e-9, $"{name}: max |d loss / d {g.Name}|");
    }

    [Fact]
    public void Tied_weights_are_one_initializer()
    {
        var model = HfExporter.Export(Repo.Fixture("hf", "gpt2_prefixed"));
        Assert.NotNull(model.Graph.FindInitializer("transformer.wte.weight"));
        Assert.Null(model.Graph.FindInitializer("lm_head.weight"));
        var tied = HfExporter.Export(Repo.Fixture("hf", "llama_tied_bf16"));
        Assert.Null(tied.Graph.FindInitializer("lm_head.weight"));
        Assert.Equal(2, tied.Graph.FindInitializer("model.embed_tokens.weight")!.Consumers.Count());
        Assert.All(tied.Graph.Initializers, v => Assert.Equal(ElementType.Float, v.ElementType));
    }

    private string CopyCheckpoint(string name)
    {
        var dir = _dir.File(name + "_copy");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(Repo.Fixture("hf", name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }

    [Fact]
    public void Unknown_model_type_lists_the_supported_ones()
    {
        var dir = CopyCheckpoint("llama");
        File.WriteAllText(Path.Combine(dir, "config.json"), File.ReadAllText(Path.Combine(dir, "config.json")).Replace("\"llama\"", "\"falcon\""));
        var e = Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir));
        Assert.Contains("'falcon'", e.Message);
        Assert.Contains("gpt2, llama, mistral, qwen2", e.Message);
    }

    [Fact]
    public void Missing_tensor_and_shape_mismatch_are_named()
    {
        var dir = CopyCheckpoint("llama");
        var (tensors, _) = SafeTensors.Read(Path.Combine(dir, "model.safetensors"));
        SafeTensors.Write(Path.Combine(dir, "model.safetensors"), tensors.Where(t => t.Name != "model.layers.1.mlp.up_proj.weight"));
        Assert.Contains("'model.layers.1.mlp.up_proj.weight' is missing", Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir)).Message);

        var wrong = tensors.Select(t => t.Name == "model.norm.weight" ? TensorData.Create<float>(t.Name, [16], new float[16]) : t);
        SafeTensors.Write(Path.Combine(dir, "model.safetensors"), wrong);
        var e = Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir));
        Assert.Contains("'model.norm.weight'", e.Message);
        Assert.Contains("[16]", e.Message);
        Assert.Contains("[32]", e.Message);
    }

    [Fact]
    public void Malformed_safetensors_headers_are_refused()
    {
        var dir = CopyCheckpoint("llama");
        var path = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        BitConverter.GetBytes(200L << 20).CopyTo(bytes, 0);           // header length of 200 MB
        File.WriteAllBytes(path, bytes);
        Assert.Contains("100 MB", Assert.Throws<OnnxFormatException>(() => HfExporter.Export(dir)).Message);

        // A file cut short: the last tensor's data_offsets run past the end of the data section.
        var good = File.ReadAllBytes(Repo.Fixture("hf", "llama", "model.safetensors"));
        File.WriteAllBytes(path, good[..^100]);
        var e = Assert.Throws<OnnxFormatException>(() => HfExporter.Export(dir));
        Assert.Contains("outside the data section", e.Message);
        Assert.Contains("tensor '", e.Message);

        File.WriteAllBytes(path, [.. good[..8], .. "{not json"u8.ToArray()]);
        Assert.Contains("header", Assert.Throws<OnnxFormatException>(() => HfExporter.Export(dir)).Message);
    }

    [Fact]
    public void Llama3_rope_scaling_gives_the_frequencies_transformers_computes()
    {
        // Llama-3.2-1B: head_dim 64, rope_theta 500000, rope_scaling {factor 32, low 1, high 4, original 8192}.
        // Expected: transformers' _compute_llama3_parameters in PyTorch (float32), entries 0, 5, 10, 15, 20, 25, 31.
        var config = new LlamaConfig
        {
            VocabSize = 8, HiddenSize = 128, Layers = 1, Heads = 2, KeyValueHeads = 1, IntermediateSize = 8, RopeTheta = 500000,
            RopeScaling = new Llama3RopeScaling(32, 1, 4, 8192),
        };
        var inv = config.InverseFrequencies();
        double[] expected = [1.0, 0.12868738174438477, 0.016560440883040428, 0.0012905480107292533, 8.570255886297673e-06, 1.1028836297555245e-06, 9.418306490260875e-08];
        int[] at = [0, 5, 10, 15, 20, 25, 31];
        for (int k = 0; k < at.Length; k++)
            Assert.True(Math.Abs(inv[at[k]] - expected[k]) <= 1e-6 * expected[k], $"inv_freq[{at[k]}] = {inv[at[k]]}, PyTorch {expected[k]}");
    }

    [Fact]
    public void Unknown_rope_scaling_and_sliding_windows_are_refused_not_ignored()
    {
        var dir = CopyCheckpoint("llama");
        var config = Path.Combine(dir, "config.json");
        var original = File.ReadAllText(config);
        File.WriteAllText(config, original.Replace("\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}"));
        var e = Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir));
        Assert.Contains("rope_scaling type 'yarn'", e.Message);
        Assert.Contains("config.json", e.Message);

        File.WriteAllText(config, original.Replace("\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}"));
        Assert.Contains("rope_scaling.low_freq_factor", Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir)).Message);

        File.WriteAllText(config, original.Replace("\"model_type\"", "\"use_sliding_window\": true, \"model_type\""));
        Assert.Contains("use_sliding_window", Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir)).Message);

        File.WriteAllText(config, original.Replace("\"mlp_bias\": false", "\"mlp_bias\": true"));
        Assert.Contains("mlp_bias", Assert.Throws<InvalidDataException>(() => HfExporter.Export(dir)).Message);
    }

    [Fact]
    public void Export_streams_the_checkpoint_into_external_data_with_the_same_values()
    {
        // The checkpoint is read lazily (bf16 converted to float32 as it is written); the saved model must hold exactly
        // what an eager conversion gives.
        var source = Repo.Fixture("hf", "llama_tied_bf16");
        var model = HfExporter.Export(source);
        Assert.All(model.Graph.Initializers.Where(v => v.Initializer!.ElementCount >= 256), v => Assert.True(v.Initializer!.IsDeferred, v.Name));
        var path = _dir.File("streamed.onnx");
        model.Save(path, new SaveOptions { ExternalDataFile = "streamed.onnx.data", ExternalDataThreshold = 1024 });
        var loaded = Model.Load(path);
        var eager = SafeTensors.Read(Path.Combine(source, "model.safetensors")).Tensors.ToDictionary(t => t.Name);
        foreach (var (name, t) in eager)
        {
            var saved = loaded.Graph.FindInitializer(name)!.Initializer!;
            Assert.Equal(ElementType.Float, saved.ElementType);
            Assert.Equal(t.ToDoubles().Select(x => (float)x), saved.AsSpan<float>().ToArray());
        }
    }
}
