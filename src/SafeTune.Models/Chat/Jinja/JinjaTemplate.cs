using SafeTune.Onnx;

namespace SafeTune.Models.Chat.Jinja;

/// <summary>
/// A parsed Jinja chat template. The interpreter covers what Hub chat templates use (output, <c>if</c>/<c>elif</c>/<c>else</c>,
/// <c>for</c> with <c>loop.*</c> and <c>else</c>, <c>set</c> and <c>namespace()</c>, slicing, string methods, the common
/// filters and tests, <c>raise_exception</c>, <c>range</c>, <c>strftime_now</c>) and follows Hugging Face's reference
/// implementation (@huggingface/jinja, as transformers.js renders chat templates): <c>trim_blocks</c> and
/// <c>lstrip_blocks</c> on, JavaScript's string forms of values. Anything else (macros, call blocks, unknown filters)
/// fails with a <see cref="JinjaUnsupportedException"/> that names the feature and the template line.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Node> _body;

    private JinjaTemplate(string source, string name, List<Node> body)
    {
        Source = source;
        Name = name;
        _body = body;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>The name used in error messages (a file path or a model name).</summary>
    public string Name { get; }

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <exception cref="JinjaException">The template is malformed or uses an unsupported feature.</exception>
    public static JinjaTemplate Parse(string source, string name = "chat_template")
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(name);
        var tokens = JinjaLexer.Tokenize(source, name);
        return new JinjaTemplate(source, name, JinjaParser.Parse(tokens, name));
    }

    /// <summary>
    /// Renders the template with <paramref name="variables"/>: strings, numbers, booleans, null, lists, dictionaries
    /// (<c>IDictionary&lt;string, object?&gt;</c>), <see cref="System.Text.Json.JsonElement"/>s and <see cref="ChatMessage"/>s.
    /// </summary>
    /// <param name="variables">The template's variables.</param>
    /// <param name="now">The clock <c>strftime_now</c> reads (local time by default, as the reference does).</param>
    /// <exception cref="JinjaException">Rendering failed; <see cref="JinjaRaisedException"/> when the template raised.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime>? now = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var globals = new Scope(null);
        foreach (var (key, value) in variables)
        {
            try
            {
                globals.Set(key, JinjaValue.From(value));
            }
            catch (UserInputException e)
            {
                throw new JinjaException(Name, 0, $"variable '{key}': {e.Message}", e);
            }
        }
        var interpreter = new JinjaInterpreter(Name, now ?? (() => DateTime.Now));
        try
        {
            return interpreter.Render(_body, globals);
        }
        catch (JinjaRuntimeError e)
        {
            // Errors outside any expression (a loop control statement outside a loop, say).
            throw new JinjaException(Name, 0, e.Message, e);
        }
    }
}
