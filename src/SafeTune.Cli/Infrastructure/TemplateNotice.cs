using SafeTune.Models.Chat;

namespace SafeTune.Cli.Infrastructure;

/// <summary>How every command that renders prompts names its chat template.</summary>
public static class TemplateNotice
{
    /// <summary>
    /// Prints <see cref="TemplateChoice.Describe"/> on stdout (not with <c>--json</c>, whose object carries a
    /// <c>template</c> field instead) and, when no template was named or found, a warning on stderr.
    /// </summary>
    public static void Print(TemplateChoice choice, bool json)
    {
        Warn(choice);
        if (!json) Console.Out.WriteLine(choice.Describe());
    }

    /// <summary>Prints the warning on stderr when no template was named or found.</summary>
    public static void Warn(TemplateChoice choice)
    {
        ArgumentNullException.ThrowIfNull(choice);
        if (choice.Warning is { } warning) Console.Error.WriteLine("safetune: warning: " + warning);
    }
}
