using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

public sealed class ExportCommandTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Exports_a_checkpoint_that_inspect_and_grads_accept()
    {
        var onnx = _dir.File("qwen2.onnx");
        var r = CliRunner.Run("export", "--from-hf", Repo.Fixture("hf", "qwen2"), "--out", onnx, "--hidden-states", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal("qwen2", json.GetProperty("modelType").GetString());
        Assert.Equal(2, json.GetProperty("layers").GetInt32());
        var inspect = JsonDocument.Parse(CliRunner.Run("inspect", onnx, "--json").Stdout).RootElement;
        Assert.Equal(3, inspect.GetProperty("outputs").GetArrayLength()); // logits + 2 hidden states
        Assert.Empty(inspect.GetProperty("nonDifferentiable").EnumerateArray());
        Assert.Equal(json.GetProperty("parameters").GetInt64(), inspect.GetProperty("parameters").GetInt64());
    }

    [Fact]
    public void Writes_a_GenAI_folder_from_a_checkpoint_with_a_tokenizer()
    {
        // The qwen2 fixture with the tiny chat tokenizer beside its weights.
        var ckpt = _dir.File("qwen2");
        Directory.CreateDirectory(ckpt);
        foreach (var f in Directory.GetFiles(Repo.Fixture("hf", "qwen2"))) File.Copy(f, Path.Combine(ckpt, Path.GetFileName(f)));
        CliRunner.Run("export", "--from-hf", ckpt, "--genai-out", _dir.File("none")).AssertUserError("tokenizer.json");
        using var chat = new TinyChat();
        foreach (var f in Directory.GetFiles(chat.Folder)) File.Copy(f, Path.Combine(ckpt, Path.GetFileName(f)));

        var genai = _dir.File("genai");
        var r = CliRunner.Run("export", "--from-hf", ckpt, "--genai-out", genai, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(genai, json.GetProperty("genaiOut").GetString());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("out").ValueKind);
        var model = JsonDocument.Parse(File.ReadAllText(Path.Combine(genai, "genai_config.json"))).RootElement.GetProperty("model");
        Assert.Equal("qwen2", model.GetProperty("type").GetString());
        Assert.Equal(64, model.GetProperty("context_length").GetInt32()); // max_position_embeddings
        Assert.Equal(96, model.GetProperty("vocab_size").GetInt32());
        var inspect = JsonDocument.Parse(CliRunner.Run("inspect", Path.Combine(genai, "model.onnx"), "--json").Stdout).RootElement;
        var inputs = inspect.GetProperty("inputs").EnumerateArray().Select(i => i.GetProperty("name").GetString()).ToArray();
        Assert.Contains("past_key_values.1.value", inputs);
    }

    [Fact]
    public void Bad_checkpoints_are_named()
    {
        CliRunner.Run("export", "--from-hf", _dir.File("missing"), "--out", _dir.File("x.onnx")).AssertUserError("missing", "not found");
        Directory.CreateDirectory(_dir.File("empty"));
        CliRunner.Run("export", "--from-hf", _dir.File("empty"), "--out", _dir.File("x.onnx")).AssertUserError("config.json");
        CliRunner.Run("export", "--out", _dir.File("x.onnx")).AssertUserError("--from-hf");
        Assert.False(File.Exists(_dir.File("x.onnx")));
    }
}
