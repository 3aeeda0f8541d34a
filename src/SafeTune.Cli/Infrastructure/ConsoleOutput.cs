using System.Text.RegularExpressions;
using Spectre.Console;

namespace SafeTune.Cli.Infrastructure;

/// <summary>
/// How output reads when stdout is not a terminal (a log file, a pipe, CI): tables and lines take the width they need,
/// so no word is ever wrapped inside a table cell, and progress is written as occasional lines instead of redrawn.
/// </summary>
public static class ConsoleOutput
{
    /// <summary>The width tables and lines may take when stdout is redirected: as wide as their content.</summary>
    public const int RedirectedWidth = 4096;

    /// <summary>True when stdout is a terminal that live displays (spinners, progress bars) can redraw.</summary>
    public static bool Live => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Widens the console when stdout is redirected; called once at start-up.</summary>
    public static void Configure()
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = RedirectedWidth;
    }

    /// <summary>
    /// Runs <paramref name="body"/> under a status line: a spinner on a terminal; otherwise lines written by a
    /// <see cref="StatusLog"/>. <paramref name="body"/> gets the function that sets the status (markup text).
    /// </summary>
    public static T Status<T>(string initial, Func<Action<string>, T> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (Live) return AnsiConsole.Status().Start(initial, ctx => body(text => ctx.Status(text)));
        var log = new StatusLog(Console.Out, TimeSpan.FromSeconds(10));
        log.Update(initial);
        return body(log.Update);
    }
}

/// <summary>
/// Status updates as log lines: a line when the stage changes (the text with its numbers set aside) and, within a
/// stage, at most one per <c>interval</c>, so 120 training steps give a handful of lines, not 120.
/// </summary>
/// <param name="output">Where the lines go.</param>
/// <param name="interval">The least time between two lines of the same stage.</param>
/// <param name="clock">The time source (default: the system clock).</param>
public sealed partial class StatusLog(TextWriter output, TimeSpan interval, Func<DateTime>? clock = null)
{
    private readonly Func<DateTime> _clock = clock ?? (() => DateTime.UtcNow);
    private string? _stage;
    private string? _last;
    private DateTime _written;

    /// <summary>Takes a status (markup text); writes it as plain text when it is due.</summary>
    public void Update(string status)
    {
        var text = Markup.Remove(status).Trim();
        if (text.Length == 0 || text == _last) return;
        var stage = Numbers().Replace(text, "#");
        var now = _clock();
        if (stage == _stage && now - _written < interval) return;
        _stage = stage;
        _last = text;
        _written = now;
        output.WriteLine(text);
    }

    [GeneratedRegex(@"\d+(\.\d+)?")]
    private static partial Regex Numbers();
}
