using System.Text.RegularExpressions;

namespace SafeTune.Onnx;

/// <summary>
/// A setting whose value is not meaningful. <see cref="Option"/> names the setting at fault in kebab case
/// (<c>beta-map</c>). The message refers to settings as <c>{name}</c>: <see cref="Render"/> writes each reference the way
/// the caller's surface spells it (an experiment file its key, the command line its flag), and
/// <see cref="Exception.Message"/> writes the command line's spelling, <c>--beta-map</c>.
/// </summary>
public sealed partial class OptionException : UserInputException
{
    /// <summary>Creates the exception for <paramref name="option"/>; <paramref name="template"/> writes settings as <c>{name}</c>.</summary>
    public OptionException(string option, string template, Exception? inner = null) : base(CommandLine(template), inner)
    {
        Option = option;
        Template = template;
    }

    /// <summary>The setting at fault, in kebab case.</summary>
    public string Option { get; }

    /// <summary>The property of the options object that holds the setting, where one does (<c>Rank</c>).</summary>
    public string? ParamName { get; init; }

    /// <summary>The message with each setting it refers to written as <c>{name}</c>.</summary>
    public string Template { get; }

    /// <summary>The message with each setting written by <paramref name="spell"/>.</summary>
    public string Render(Func<string, string> spell) => Spell(Template, spell);

    /// <summary>A setting's name as the command line spells it: <c>beta-map</c> is <c>--beta-map</c>.</summary>
    public static string Flag(string option) => "--" + option;

    /// <summary><paramref name="template"/> with each setting written <c>{name}</c> spelled as the command line does, <see cref="Flag"/>.</summary>
    public static string CommandLine(string template) => Spell(template, Flag);

    private static string Spell(string template, Func<string, string> spell) =>
        Reference().Replace(template, m => spell(m.Groups[1].Value));

    [GeneratedRegex(@"\{([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\}")]
    private static partial Regex Reference();
}
