using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public class InspectCommandTests
{
    public static TheoryData<string> Decoders() => ["gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded"];

    [Theory]
    [MemberData(nameof(Decoders))]
    public void Json_matches_what_the_onnx_package_reports(string name)
    {
        var r = CliRunner.Run("inspect", Repo.Fixture("models", name + ".onnx"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var got = JsonDocument.Parse(r.Stdout).RootElement;
        var want = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("models", name + ".expected.json"))).RootElement;

        var ops = got.GetProperty("ops").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        var wantOps = want.GetProperty("ops").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        Assert.Equal(wantOps.OrderBy(k => k.Key), ops.OrderBy(k => k.Key));
        Assert.Equal(want.GetProperty("parameters").GetInt64(), got.GetProperty("parameters").GetInt64());
        Assert.Equal(want.GetProperty("initializers").GetInt32(), got.GetProperty("initializers").GetInt32());
        Assert.Equal(want.GetProperty("irVersion").GetInt64(), got.GetProperty("irVersion").GetInt64());
        Assert.Equal(17, got.GetProperty("opsets").GetProperty("ai.onnx").GetInt32());

        var inputs = got.GetProperty("inputs").EnumerateArray().ToList();
        Assert.Equal("input_ids", Assert.Single(inputs).GetProperty("name").GetString());
        Assert.Equal("int64", inputs[0].GetProperty("elementType").GetString());
        Assert.Equal("logits", got.GetProperty("outputs")[0].GetProperty("name").GetString());

        var hidden = got.GetProperty("hiddenStates").EnumerateArray().ToList();
        Assert.Equal(want.GetProperty("layers").GetInt32(), hidden.Count);
        Assert.Equal(want.GetProperty("hiddenStateNames").EnumerateArray().Select(e => e.GetString()), hidden.Select(h => h.GetProperty("tensor").GetString()));
        Assert.All(hidden, h => Assert.Equal("[\"batch\",\"sequence\",32]", h.GetProperty("shape").GetRawText().Replace(" ", "").Replace("\n", "")));
    }

    [Fact]
    public void Pretrained_MiniLM_shows_six_layers()
    {
        using var dir = new TempDir();
        var path = MiniLm.WriteModel(dir.File("minilm.onnx"));
        var r = CliRunner.Run("inspect", path, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var got = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(22_713_216, got.GetProperty("parameters").GetInt64());
        Assert.Equal(6, got.GetProperty("hiddenStates").GetArrayLength());
        Assert.Equal(13, got.GetProperty("opsets").GetProperty("ai.onnx").GetInt32());
    }

    [Fact]
    public void Table_output_is_readable()
    {
        var r = CliRunner.Run("inspect", Repo.Fixture("models", "llama_tiny_folded.onnx"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Hidden states", r.Stdout);
        Assert.Contains("/model/layers.1/Add_1_output_0", r.Stdout);
        Assert.Contains("24,736", r.Stdout);
        Assert.Contains("MatMul", r.Stdout);
    }

    [Fact]
    public void Builtin_model_is_built_in_code()
    {
        var r = CliRunner.Run("inspect", "builtin:tiny-llama", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var got = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(4, got.GetProperty("hiddenStates").GetArrayLength());
        Assert.Equal(Models.Decoders.LlamaConfig.Tiny.ParameterCount, got.GetProperty("parameters").GetInt64());

        var bad = CliRunner.Run("inspect", "builtin:nope");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("tiny-llama", bad.Stderr);
    }

    [Fact]
    public void Parameters_buffers_and_ties_are_listed_with_their_reasons()
    {
        var r = CliRunner.Run("inspect", Repo.Fixture("models", "llama_tables_folded.onnx"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var weights = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("weights");
        var buffers = weights.GetProperty("buffers").EnumerateArray().ToDictionary(b => b.GetProperty("name").GetString()!, b => b.GetProperty("reason").GetString()!);
        Assert.Equal(["model.layers.0.self_attn.causal_mask", "model.layers.0.self_attn.cos_cached", "model.layers.0.self_attn.sin_cached"], buffers.Keys.Order());
        Assert.StartsWith("rotary table", buffers["model.layers.0.self_attn.cos_cached"]);
        Assert.StartsWith("additive mask", buffers["model.layers.0.self_attn.causal_mask"]);
        Assert.Equal(21, weights.GetProperty("parameters").GetArrayLength());
        Assert.Equal(24_736, weights.GetProperty("trainableElements").GetInt64());
        Assert.All(weights.GetProperty("parameters").EnumerateArray(), p => Assert.False(string.IsNullOrEmpty(p.GetProperty("reason").GetString())));
        Assert.Equal(0, weights.GetProperty("ties").GetArrayLength());

        var gpt2 = CliRunner.Run("inspect", Repo.Fixture("models", "gpt2_tiny_folded.onnx"), "--json");
        var tied = JsonDocument.Parse(gpt2.Stdout).RootElement.GetProperty("weights");
        var tie = Assert.Single(tied.GetProperty("ties").EnumerateArray().ToList());
        Assert.Equal("transformer.wte.weight", tie.GetProperty("kept").GetString());
        Assert.Equal("onnx::MatMul_288", tie.GetProperty("copy").GetString());
        Assert.True(tie.GetProperty("transposed").GetBoolean());
        Assert.Equal(30_592, tied.GetProperty("trainableElements").GetInt64()); // the tied matrix once (33,664 stored)

        var table = CliRunner.Run("inspect", Repo.Fixture("models", "gpt2_tiny_folded.onnx"));
        Assert.Contains("Parameters and buffers", table.Stdout);
        Assert.Contains("bias added after a MatMul", table.Stdout);
        Assert.Contains("tied: 'onnx::MatMul_288' is the transpose of 'transformer.wte.weight'", table.Stdout);
    }
}
