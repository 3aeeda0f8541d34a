using SafeTune.TestSupport;

namespace SafeTune.Cli.Tests;

/// <summary>Numeric options that would turn a safeguard off without a word: every one exits 2 naming the option, before anything is written.</summary>
public sealed class OptionValidationTests : IDisposable
{
    private static readonly string Model = Repo.Fixture("models", "llama_tiny_folded.onnx");
    private static readonly string Batch = Repo.Fixture("models", "llama_tiny_folded.batch.json");
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("--clip-norm", "nan")]
    [InlineData("--weight-decay", "nan")]
    [InlineData("--lr", "nan")]
    [InlineData("--weight-decay", "Infinity")]
    public void Train_refuses_non_finite_numbers_and_creates_no_run_folder(string option, string value)
    {
        var run = _dir.File("run");
        CliRunner.Run("train", "--model", Model, "--tokenizer", "gpt2", "--data", _dir.File("none.jsonl"), "--out", run, option, value)
            .AssertUserError(option, "finite number");
        Assert.False(Directory.Exists(run));
    }

    [Theory]
    [InlineData("--weight-decay", "nan")]
    [InlineData("--clip-norm", "nan")]
    [InlineData("--lr", "Infinity")]
    public void Fit_refuses_non_finite_numbers_before_the_first_step(string option, string value) =>
        CliRunner.Run("fit", Model, "--batch", Batch, "--steps", "3", option, value).AssertUserError(option);

    [Fact]
    public void Eval_refuses_a_non_finite_threshold() =>
        CliRunner.Run("eval", "--model", Model, "--tokenizer", "gpt2", "--harmful", _dir.File("h.csv"), "--asr-threshold", "nan")
            .AssertUserError("--asr-threshold");
}
