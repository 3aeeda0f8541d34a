using SafeTune.Cli.Infrastructure;
using SafeTune.Onnx;

namespace SafeTune.Cli.Tests;

/// <summary>
/// Which exceptions are the user's to fix (exit code 2, one line) and which are bugs (exit code 1, with a line asking for
/// a report), and how a setting named by a library error is spelled on the command line.
/// </summary>
public sealed class CliErrorsTests
{
    [Fact]
    public void An_option_error_carries_the_option_and_is_rendered_as_its_flag()
    {
        var e = new OptionException("beta-map", "{beta-map} 'x' is not a map; with {risk} none use a fixed beta.");
        Assert.Equal("beta-map", e.Option);
        Assert.Equal("--beta-map 'x' is not a map; with --risk none use a fixed beta.", e.Message);
        Assert.Equal("beta-map 'x' is not a map; with risk none use a fixed beta.", e.Render(name => name));
        var (code, line) = CliErrors.Describe(e);
        Assert.Equal(ExitCodes.UserError, code);
        Assert.Equal("safetune: error: --beta-map 'x' is not a map; with --risk none use a fixed beta.", line);
        Assert.Equal("--lora-alpha", CliErrors.Flag("lora-alpha"));
    }

    [Fact]
    public void Typed_library_errors_are_user_errors()
    {
        Assert.Equal((ExitCodes.UserError, "safetune: error: data.jsonl: line 3 is not JSON."),
            CliErrors.Describe(new UserInputException("data.jsonl: line 3 is not JSON.")));
        Assert.Equal(ExitCodes.UserError, CliErrors.Describe(new InvalidDataException("x")).ExitCode);
        Assert.Equal(ExitCodes.UserError, CliErrors.Describe(new FileNotFoundException("x")).ExitCode);
    }

    [Fact]
    public void An_unexpected_exception_is_reported_as_a_bug_with_the_debug_hint()
    {
        // An ArgumentException from .NET is a call SafeTune got wrong, not a mistake of the user's.
        var bug = new ArgumentException("Value cannot be an empty string.", "path");
        var (code, line) = CliErrors.Describe(bug);
        Assert.Equal(ExitCodes.InternalError, code);
        Assert.Equal("safetune: internal error: Value cannot be an empty string.", line);

        var (exit, lines) = CliErrors.Report(bug, debug: false);
        Assert.Equal(ExitCodes.InternalError, exit);
        Assert.Equal([line, CliErrors.BugHint], lines);
        Assert.Contains("bug", CliErrors.BugHint, StringComparison.Ordinal);
        Assert.Contains("SAFETUNE_DEBUG=1", CliErrors.BugHint, StringComparison.Ordinal);

        (exit, lines) = CliErrors.Report(new InvalidOperationException("x"), debug: true);
        Assert.Equal(3, lines.Count);
        Assert.Contains("InvalidOperationException", lines[1], StringComparison.Ordinal);
        Assert.Equal(CliErrors.BugHint, lines[2]);

        // A user error has no hint.
        Assert.Equal(["safetune: error: --steps must be at least 1, not 0."],
            CliErrors.Report(new OptionException("steps", "{steps} must be at least 1, not 0."), debug: false).Lines);
    }
}
