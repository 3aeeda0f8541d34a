using SafeTune.Onnx;
using SafeTune.Runtime;
using Spectre.Console.Cli;

namespace SafeTune.Cli.Infrastructure;

/// <summary>Process exit codes.</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;
    /// <summary>An unexpected internal failure.</summary>
    public const int InternalError = 1;
    /// <summary>Bad input from the user: a file, tensor, option or argument at fault.</summary>
    public const int UserError = 2;
}

/// <summary>Turns exceptions into one-line messages and exit codes. Stack traces appear only with SAFETUNE_DEBUG=1.</summary>
public static class CliErrors
{
    /// <summary>Runs the app, mapping user errors to exit code 2 and anything else to 1.</summary>
    public static int Run(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e)
        {
            var (code, lines) = Report(e, Environment.GetEnvironmentVariable("SAFETUNE_DEBUG") == "1");
            foreach (var line in lines) Console.Error.WriteLine(line);
            return code;
        }
    }

    /// <summary>The line that follows an internal error: it is a bug, to be reported with the debug output.</summary>
    public const string BugHint = "safetune: this is a bug in safetune; please report it with the output of the same command run with SAFETUNE_DEBUG=1.";

    /// <summary>
    /// The exit code and the lines written to standard error for <paramref name="e"/>: <see cref="Describe"/>'s line,
    /// the exception with its stack trace when <paramref name="debug"/>, and <see cref="BugHint"/> after an internal error.
    /// </summary>
    public static (int ExitCode, IReadOnlyList<string> Lines) Report(Exception e, bool debug)
    {
        var (code, line) = Describe(e);
        List<string> lines = [line];
        if (debug) lines.Add(e.ToString());
        if (code == ExitCodes.InternalError) lines.Add(BugHint);
        return (code, lines);
    }

    /// <summary>The exit code and the one line reported for <paramref name="e"/>.</summary>
    public static (int ExitCode, string Line) Describe(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (FileSystemRefusal(e) is { } refusal) return (ExitCodes.UserError, $"safetune: error: {OneLine(refusal)}");
        var text = e switch
        {
            OptionException option => option.Render(Flag),
            // ArgumentException appends " (Parameter 'name')", a .NET parameter the user never typed.
            ArgumentException { ParamName: { } param } => e.Message.Replace($" (Parameter '{param}')", "", StringComparison.Ordinal),
            _ => e.Message,
        };
        return IsUserError(e) ? (ExitCodes.UserError, $"safetune: error: {OneLine(text)}") : (ExitCodes.InternalError, $"safetune: internal error: {OneLine(text)}");
    }

    /// <summary>A setting's name as the command line spells it (<see cref="OptionException.Flag"/>): <c>beta-map</c> is <c>--beta-map</c>.</summary>
    public static string Flag(string option) => OptionException.Flag(option);

    private static bool IsUserError(Exception e) => e is UserInputException or OnnxFormatException or CommandAppException
        or OutputFileException or Data.Public.PublicDataException or Models.Generation.PromptTooLongException or ExecutionProviderUnavailableException or InvalidDataException or Autodiff.GradientException
        or Autodiff.MissingGradientException or Runtime.Training.TrainingDivergedException or Runtime.Training.InsufficientMemoryException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException;

    // The HResult of an IOException: the errno on Linux and macOS (ENOSPC 28, EROFS 30, EDQUOT 122 on Linux, 69 on macOS),
    // a Win32 HRESULT on Windows (ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL, ERROR_WRITE_PROTECT).
    private const int Enospc = 28, Erofs = 30, EdquotLinux = 122, EdquotMac = 69;
    private const int WinHandleDiskFull = unchecked((int)0x80070027), WinDiskFull = unchecked((int)0x80070070), WinWriteProtect = unchecked((int)0x80070013);

    /// <summary>
    /// A write the file system refused for a reason the user must fix (a full disk or quota, a read-only file system),
    /// raised where a file is written directly rather than through <see cref="AtomicFile"/> (the run's logs, for example):
    /// the .NET message, which names the file, with the cause spelled out. Null for any other exception.
    /// </summary>
    private static string? FileSystemRefusal(Exception e)
    {
        if (e is not IOException io || e is OutputFileException) return null;
        bool windows = OperatingSystem.IsWindows();
        var cause = io.HResult switch
        {
            Enospc when !windows => "the disk is full",
            WinHandleDiskFull or WinDiskFull when windows => "the disk is full",
            EdquotLinux when OperatingSystem.IsLinux() => "the disk quota is used up",
            EdquotMac when OperatingSystem.IsMacOS() => "the disk quota is used up",
            Erofs when !windows => "the file system is read-only",
            WinWriteProtect when windows => "the file system is read-only",
            _ => null,
        };
        if (cause is null) return null;
        // .NET writes "No space left on device : '/path'": the path goes first, as in every other message.
        var m = System.Text.RegularExpressions.Regex.Match(io.Message, @"^.*? : '(?<path>.+)'\s*$", System.Text.RegularExpressions.RegexOptions.Singleline);
        return m.Success ? $"{m.Groups["path"].Value}: cannot be written ({cause})." : $"{io.Message.TrimEnd('.', ' ')}: cannot be written ({cause}).";
    }

    private static string OneLine(string s) => string.Join(' ', s.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
