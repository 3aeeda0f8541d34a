namespace SafeTune.Models.Chat.Jinja;

/// <summary>A chat template could not be parsed or rendered. The message names the template and its line.</summary>
public class JinjaException : Exception
{
    /// <summary>Creates the exception.</summary>
    public JinjaException(string templateName, int line, string detail, Exception? inner = null)
        : base(line > 0 ? $"chat template '{templateName}' line {line}: {detail}" : $"chat template '{templateName}': {detail}", inner)
    {
        TemplateName = templateName;
        Line = line;
        Detail = detail;
    }

    /// <summary>The template's name (a file path or a model name).</summary>
    public string TemplateName { get; }

    /// <summary>The 1-based template line at fault, or 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>The message without the template name and line.</summary>
    public string Detail { get; }
}

/// <summary>The template uses a Jinja feature this interpreter does not implement; the message names the feature.</summary>
public sealed class JinjaUnsupportedException : JinjaException
{
    /// <summary>Creates the exception.</summary>
    public JinjaUnsupportedException(string templateName, int line, string feature)
        : base(templateName, line, $"unsupported Jinja feature: {feature}")
    {
        Feature = feature;
    }

    /// <summary>The feature, for example <c>macro</c> or <c>filter 'wordwrap'</c>.</summary>
    public string Feature { get; }
}

/// <summary>The template itself refused the conversation with <c>raise_exception(...)</c>.</summary>
public sealed class JinjaRaisedException : JinjaException
{
    /// <summary>Creates the exception.</summary>
    public JinjaRaisedException(string templateName, int line, string templateMessage)
        : base(templateName, line, $"the template raised: {templateMessage}")
    {
        TemplateMessage = templateMessage;
    }

    /// <summary>The text the template passed to <c>raise_exception</c>.</summary>
    public string TemplateMessage { get; }
}

/// <summary>An error inside evaluation, before the template name and line are attached.</summary>
internal class JinjaRuntimeError(string message) : Exception(message);

/// <summary>An unsupported feature met during evaluation, before the template name and line are attached.</summary>
internal sealed class JinjaUnsupportedError(string feature) : JinjaRuntimeError(feature)
{
    public string Feature { get; } = feature;
}

/// <summary><c>raise_exception</c> was called, before the template name and line are attached.</summary>
internal sealed class JinjaRaiseError(string message) : JinjaRuntimeError(message);
