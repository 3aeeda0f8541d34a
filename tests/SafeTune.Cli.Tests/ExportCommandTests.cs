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
    public void Bad_checkpoints_are_named()
    {
        CliRunner.Run("export", "--from-hf", _dir.File("missing"), "--out", _dir.File("x.onnx")).AssertUserError("missing", "not found");
        Directory.CreateDirectory(_dir.File("empty"));
        CliRunner.Run("export", "--from-hf", _dir.File("empty"), "--out", _dir.File("x.onnx")).AssertUserError("config.json");
        CliRunner.Run("export", "--out", _dir.File("x.onnx")).AssertUserError("--from-hf");
        Assert.False(File.Exists(_dir.File("x.onnx")));
    }
}
