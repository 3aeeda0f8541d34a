using SafeTune.Models.Tokenization;

namespace SafeTune.Models.Chat;

/// <summary>How a command's chat template was chosen.</summary>
public enum TemplateOrigin
{
    /// <summary>Named with <c>--template</c>.</summary>
    Named,
    /// <summary>The model's own template, found beside the tokenizer.</summary>
    Model,
    /// <summary>Recorded in a file the command reads (a probe).</summary>
    Recorded,
    /// <summary>No template named or found: the default (plain text for chat commands, the raw prompt for probes).</summary>
    Default,
}

/// <summary>
/// The chat template a command uses and how it was chosen (<see cref="TemplateChoice.Resolve"/>): every command that
/// renders prompts resolves it here, names it in its output, and warns when there was none to find.
/// </summary>
/// <param name="Template">The template; <see langword="null"/> only for a probe's raw prompt text.</param>
/// <param name="Origin">How it was chosen.</param>
/// <param name="Tokenizer">The tokenizer spec it was looked up beside.</param>
/// <param name="Source">Where it came from: <c>--template</c>, the file it was read from, or the recording file.</param>
public sealed record TemplateChoice(ChatTemplate? Template, TemplateOrigin Origin, string Tokenizer, string Source)
{
    /// <summary>The files a model's own template is read from, in the order Hugging Face looks.</summary>
    public const string TemplateFiles = "chat_template.jinja, chat_template.json or tokenizer_config.json";

    /// <summary>The name shown for <see cref="Template"/>: a built-in name, the file of a model's own template, or <c>raw</c>.</summary>
    public string Name => Template?.Name ?? "raw";

    /// <summary>One line for the command's output, e.g. <c>chat template: chatml (--template)</c>.</summary>
    public string Describe() => Origin switch
    {
        TemplateOrigin.Named => $"chat template: {Name} (--template)",
        TemplateOrigin.Model => $"chat template: the model's own, from {Name}",
        TemplateOrigin.Recorded => $"chat template: {Name} (recorded in {Source})",
        _ => $"chat template: {Name} (none beside the tokenizer)",
    };

    /// <summary>The warning to print when no template was named or found; null otherwise.</summary>
    public string? Warning => Origin == TemplateOrigin.Default
        ? $"no chat template beside the tokenizer {Tokenizer} ({TemplateFiles}): prompts are read as {(Template is null ? "raw text" : "plain 'User:' / 'Assistant:' text")}; pass --template to choose one."
        : null;

    /// <summary>
    /// The one template lookup every command shares: the template named by <paramref name="name"/> (a built-in name),
    /// else the model's own template beside the tokenizer (<see cref="ChatTemplates.LoadModelTemplate"/>), else
    /// <paramref name="recorded"/>, else <paramref name="fallback"/> (plain for chat commands, null for a probe's raw text). The result must fit the
    /// tokenizer (<see cref="ChatTemplates.RequireFits"/>): a template whose end-of-turn marker the vocabulary lacks is
    /// refused, and so is the fallback when the tokenizer's special tokens are a chat format's.
    /// </summary>
    /// <param name="name">The <c>--template</c> value, or null.</param>
    /// <param name="tokenizerSpec">The tokenizer spec (a file, a folder or a tiktoken name).</param>
    /// <param name="tokenizer">The loaded tokenizer.</param>
    /// <param name="fallback">The template used when none is named or found.</param>
    /// <exception cref="SafeTune.Onnx.UserInputException">The name is unknown, or the template does not fit the tokenizer.</exception>
    /// <exception cref="InvalidDataException">The model's template file is malformed; the message names it.</exception>
    /// <param name="recorded">A template recorded where the command's input came from (a fused probe's), taken before the fallback.</param>
    public static TemplateChoice Resolve(string? name, string tokenizerSpec, TextTokenizer tokenizer, ChatTemplate? fallback, TemplateChoice? recorded = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizerSpec);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (name is not null)
        {
            var named = name.Trim().Equals("raw", StringComparison.OrdinalIgnoreCase) && fallback is null ? null : ChatTemplates.ByName(name);
            if (named is not null) ChatTemplates.RequireFits(named, tokenizer, chosen: true);
            return new TemplateChoice(named, TemplateOrigin.Named, tokenizerSpec, "--template");
        }
        if (FolderOf(tokenizerSpec) is { } folder && ChatTemplates.LoadModelTemplate(folder) is { } own)
            return new TemplateChoice(own, TemplateOrigin.Model, tokenizerSpec, own.Name);
        if (recorded?.Template is { } kept)
        {
            ChatTemplates.RequireFits(kept, tokenizer, chosen: true);
            return recorded;
        }
        ChatTemplates.RequireFits(fallback ?? ChatTemplates.Plain, tokenizer, chosen: false);
        return new TemplateChoice(fallback, TemplateOrigin.Default, tokenizerSpec, "default");
    }

    /// <summary>The folder a tokenizer spec lives in: the folder itself, a file's folder, or null (a tiktoken name).</summary>
    public static string? FolderOf(string tokenizerSpec) =>
        Directory.Exists(tokenizerSpec) ? tokenizerSpec
        : File.Exists(tokenizerSpec) ? Path.GetDirectoryName(Path.GetFullPath(tokenizerSpec))
        : null;

    /// <summary>
    /// What <paramref name="template"/> makes of one user message up to the assistant header, with <c>{prompt}</c> in
    /// place of the text (just <c>{prompt}</c> for raw text): two templates that give the same format show a probe the
    /// same tokens.
    /// </summary>
    public static string PromptFormat(ChatTemplate? template) =>
        template is null ? Placeholder : template.RenderPrompt([ChatMessage.User(Placeholder)]);

    private const string Placeholder = "{prompt}";
}
