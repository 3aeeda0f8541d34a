using System.Text.Json;
using SafeTune.Onnx;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class GradsCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Decoders() => ["gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded"];

    [Theory]
    [MemberData(nameof(Decoders))]
    public void Gradients_match_PyTorch_for_every_parameter(string name)
    {
        var outPath = _dir.File(name + ".safetensors");
        var r = CliRunner.Run("grads", Repo.Fixture("models", name + ".onnx"), "--batch", Repo.Fixture("models", name + ".batch.json"), "--out", outPath, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        var (want, meta) = SafeTensors.Read(Repo.Fixture("models", name + ".grads.safetensors"));
        var (got, gotMeta) = SafeTensors.Read(outPath);
        double torchLoss = double.Parse(meta["loss"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(json.GetProperty("loss").GetDouble() - torchLoss) <= 1e-5 * torchLoss);
        Assert.Equal(want.Count, json.GetProperty("gradients").GetInt32());
        Assert.Equal(want.Sum(t => t.ElementCount), json.GetProperty("parameters").GetInt64());
        Assert.True(gotMeta.ContainsKey("loss"));
        var mine = got.ToDictionary(t => t.Name);
        foreach (var t in want)
        {
            var a = mine[t.Name].AsSpan<float>();
            var e = t.AsSpan<float>();
            double maxRef = 0, maxDiff = 0;
            for (int i = 0; i < e.Length; i++) { maxRef = Math.Max(maxRef, Math.Abs(e[i])); maxDiff = Math.Max(maxDiff, Math.Abs(e[i] - a[i])); }
            Assert.True(maxDiff <= 1e-3 * maxRef, $"{t.Name}: max |ours - torch| {maxDiff:E3} > 1e-3 x {maxRef:E3}");
        }
    }

    [Fact]
    public void Onehot_embedding_gradients_agree_with_scatter()
    {
        var model = Repo.Fixture("models", "gpt2_tiny_unfolded.onnx");
        var batch = Repo.Fixture("models", "gpt2_tiny_unfolded.batch.json");
        Assert.Equal(0, CliRunner.Run("grads", model, "--batch", batch, "--out", _dir.File("s.safetensors")).ExitCode);
        Assert.Equal(0, CliRunner.Run("grads", model, "--batch", batch, "--out", _dir.File("o.safetensors"), "--embedding-grad", "onehot").ExitCode);
        var s = SafeTensors.Read(_dir.File("s.safetensors")).Tensors.ToDictionary(t => t.Name);
        foreach (var t in SafeTensors.Read(_dir.File("o.safetensors")).Tensors)
        {
            var a = t.AsSpan<float>();
            var b = s[t.Name].AsSpan<float>();
            for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-6 + 1e-5 * Math.Abs(b[i]), $"{t.Name}[{i}]");
        }
    }

    private string WriteBatch(string json)
    {
        var path = _dir.File("batch.json");
        File.WriteAllText(path, json);
        return path;
    }


    [Fact]
    public void Token_ids_outside_the_vocabulary_are_named()
    {
        var batch = WriteBatch("""{"input_ids": [[1, 2, 3], [4, 500, 6]], "labels": [[2, 3, -100], [5, 6, -100]]}""");
        var r = CliRunner.Run("grads", Repo.Fixture("models", "llama_tiny_folded.onnx"), "--batch", batch, "--out", _dir.File("g.safetensors"));
        r.AssertUserError("input_ids[1][1] = 500", "0..95");
        Assert.False(File.Exists(_dir.File("g.safetensors")));
    }

    [Fact]
    public void Labels_of_another_shape_are_reported()
    {
        var batch = WriteBatch("""{"input_ids": [[1, 2, 3], [4, 5, 6]], "labels": [[2, 3], [5, 6]]}""");
        var r = CliRunner.Run("grads", Repo.Fixture("models", "llama_tiny_folded.onnx"), "--batch", batch, "--out", _dir.File("g.safetensors"));
        r.AssertUserError("\"labels\" has shape [2, 2]", "[2, 3]");
    }

    [Fact]
    public void A_model_with_ops_that_have_no_rule_lists_every_one()
    {
        var b = GraphBuilder.ForNewModel(17);
        var ids = b.Input("input_ids", ElementType.Int64, Dim.Symbol("batch"), Dim.Symbol("sequence"));
        var emb = b.Gather(b.Parameter("embed.weight", [.. Enumerable.Range(0, 10 * 4).Select(i => i * 0.01f)], 10, 4), ids);
        var h = b.Op("Softplus", emb);
        h = b.Op("HardSigmoid", h);
        var logits = b.MatMul(h, b.Parameter("head.weight", new float[4 * 10], 4, 10));
        b.Output(logits, "logits");
        var path = _dir.File("odd.onnx");
        b.Model!.Save(path);
        var batch = WriteBatch("""{"input_ids": [[1, 2, 3]], "labels": [[2, 3, -100]]}""");
        var r = CliRunner.Run("grads", path, "--batch", batch, "--out", _dir.File("g.safetensors"));
        r.AssertUserError("Softplus", "HardSigmoid", "/Softplus", "/HardSigmoid", "embed.weight");

        var inspect = CliRunner.Run("inspect", path, "--json");
        var nd = JsonDocument.Parse(inspect.Stdout).RootElement.GetProperty("nonDifferentiable").EnumerateArray().Select(e => e.GetString());
        Assert.Equal(["HardSigmoid", "Softplus"], nd);
    }

    [Fact]
    public void Missing_options_and_bad_batch_files()
    {
        var model = Repo.Fixture("models", "llama_tiny_folded.onnx");
        CliRunner.Run("grads", model, "--out", _dir.File("g.safetensors")).AssertUserError("--batch");
        CliRunner.Run("grads", model, "--batch", _dir.File("none.json"), "--out", _dir.File("g.safetensors")).AssertUserError("none.json");
        CliRunner.Run("grads", model, "--batch", WriteBatch("{not json"), "--out", _dir.File("g.safetensors")).AssertUserError("batch.json");
        CliRunner.Run("grads", model, "--batch", WriteBatch("""{"labels": [[1]]}"""), "--out", _dir.File("g.safetensors")).AssertUserError("input_ids");
    }
}
