using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>A corpus of malformed models: every one gives exit code 2 and one line naming the file, never a stack trace.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Bad input: nothing on stdout, one error line naming what is wrong.</summary>
    private static void Rejected(CliResult r, string fragment)
    {
        Assert.Equal("", r.Stdout);
        r.AssertUserError(fragment);
    }

    private string ModelWithExternal(string file, string location)
    {
        var path = _dir.File(file);
        HostileFiles.ModelWithExternal(path, "layer.weight", location, [4]);
        return path;
    }


    [Fact]
    public void Truncated_protobuf()
    {
        var bytes = File.ReadAllBytes(Repo.Fixture("models", "gpt2_tiny_folded.onnx"));
        var path = _dir.File("truncated.onnx");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Rejected(CliRunner.Run("inspect", path, "--json"), "truncated.onnx");
    }

    [Fact]
    public void Random_bytes()
    {
        var junk = new byte[3000];
        new Random(5).NextBytes(junk);
        var path = _dir.File("random.onnx");
        File.WriteAllBytes(path, junk);
        Rejected(CliRunner.Run("inspect", path), "random.onnx");
    }

    [Fact]
    public void Empty_file()
    {
        var path = _dir.File("empty.onnx");
        File.WriteAllBytes(path, []);
        Rejected(CliRunner.Run("inspect", path, "--json"), "empty.onnx");
    }

    [Fact]
    public void Text_file()
    {
        var path = _dir.File("notes.onnx");
        File.WriteAllText(path, "this is not a model\n");
        Rejected(CliRunner.Run("inspect", path), "notes.onnx");
    }

    [Fact]
    public void External_data_escaping_to_etc_passwd()
    {
        var path = ModelWithExternal("escape.onnx", "../../etc/passwd");
        Rejected(CliRunner.Run("inspect", path, "--json"), "'layer.weight'");
    }

    [Fact]
    public void External_data_with_absolute_path()
    {
        var path = ModelWithExternal("absolute.onnx", "/etc/passwd");
        Rejected(CliRunner.Run("inspect", path, "--json"), "absolute path");
    }

    [Fact]
    public void Missing_external_file()
    {
        var path = ModelWithExternal("missing.onnx", "weights.bin");
        Rejected(CliRunner.Run("inspect", path, "--json"), "weights.bin");
    }

    [Fact]
    public void Missing_model_file_and_folder()
    {
        Rejected(CliRunner.Run("inspect", _dir.File("nowhere.onnx")), "nowhere.onnx");
        Rejected(CliRunner.Run("inspect", _dir.Path), "folder");
    }

    [Fact]
    public void Bad_command_line()
    {
        Assert.Equal(2, CliRunner.Run("inspect").ExitCode);
        var unknown = CliRunner.Run("inspect", Repo.Fixture("models", "gpt2_tiny_folded.onnx"), "--no-such-option");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("no-such-option", unknown.Stderr);
        Assert.Equal(2, CliRunner.Run("no-such-command").ExitCode);
    }
}

public class HelpTests
{
    [Theory]
    [InlineData("inspect")]
    [InlineData("grads")]
    [InlineData("fit")]
    [InlineData("export")]
    [InlineData("train")]
    [InlineData("eval")]
    [InlineData("experiment")]
    [InlineData("demo")]
    [InlineData("probe", "train")]
    [InlineData("probe", "eval")]
    [InlineData("probe", "score")]
    [InlineData("data", "list")]
    [InlineData("data", "fetch")]
    [InlineData("data", "verify")]
    public void Every_command_prints_its_help(params string[] command)
    {
        var r = CliRunner.Run([.. command, "--help"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("USAGE", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [Theory]
    [InlineData("train")]
    [InlineData("eval")]
    public void Probe_commands_print_their_help(string sub)
    {
        var r = CliRunner.Run("probe", sub, "--help");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("--harmful", r.Stdout);
    }
}
