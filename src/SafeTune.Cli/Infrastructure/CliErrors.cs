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

/// <summary>An error caused by the user's input; its message names what is at fault and is printed as one line.</summary>
public sealed class UserInputException(string message, Exception? inner = null) : Exception(message, inner);

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
        catch (Exception e) when (IsUserError(e))
        {
            Report(e, internalError: false);
            return ExitCodes.UserError;
        }
        catch (Exception e)
        {
            Report(e, internalError: true);
            return ExitCodes.InternalError;
        }
    }

    private static bool IsUserError(Exception e) => e is UserInputException or OnnxFormatException or CommandAppException
        or OutputFileException or Safety.Data.Public.PublicDataException or Models.Generation.PromptTooLongException or ExecutionProviderUnavailableException or InvalidDataException or Autodiff.GradientException
        or Autodiff.MissingGradientException or Runtime.Training.TrainingDivergedException or Runtime.Training.InsufficientMemoryException or ArgumentException or FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException;

    private static void Report(Exception e, bool internalError)
    {
        // ArgumentException appends " (Parameter 'name')", a .NET parameter the user never typed.
        var text = e is ArgumentException { ParamName: { } param } ? e.Message.Replace($" (Parameter '{param}')", "", StringComparison.Ordinal) : e.Message;
        var message = OneLine(text);
        Console.Error.WriteLine(internalError ? $"safetune: internal error: {message}" : $"safetune: error: {message}");
        if (Environment.GetEnvironmentVariable("SAFETUNE_DEBUG") == "1") Console.Error.WriteLine(e);
        else if (internalError) Console.Error.WriteLine("(set SAFETUNE_DEBUG=1 for details)");
    }

    private static string OneLine(string s) => string.Join(' ', s.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
