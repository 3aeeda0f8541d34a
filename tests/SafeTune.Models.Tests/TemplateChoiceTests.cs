using SafeTune.Models.Chat;
using SafeTune.Onnx;
using SafeTune.TestSupport;
using Xunit;

namespace SafeTune.Models.Tests;

/// <summary>The one template lookup every command shares (<see cref="TemplateChoice.Resolve"/>).</summary>
public sealed class TemplateChoiceTests : IDisposable
{
    private readonly TinyChat _chat = new();

    public void Dispose() => _chat.Dispose();

    /// <summary>A folder holding only the tokenizer.json of the tiny chat model (ChatML special tokens), plus the given files.</summary>
    private string Bare(string name, params (string File, string Text)[] files)
    {
        var dir = _chat.File(name);
        Directory.CreateDirectory(dir);
        File.Copy(_chat.TokenizerPath, Path.Combine(dir, "tokenizer.json"));
        foreach (var (file, text) in files) File.WriteAllText(Path.Combine(dir, file), text);
        return dir;
    }

    [Fact]
    public void The_models_own_template_is_found_in_any_of_its_files_and_named()
    {
        var own = TemplateChoice.Resolve(null, _chat.TokenizerPath, _chat.Tokenizer, ChatTemplates.Plain);
        Assert.Equal(TemplateOrigin.Model, own.Origin);
        Assert.EndsWith("tokenizer_config.json (chat_template)", own.Name);
        Assert.Null(own.Warning);
        Assert.StartsWith("chat template: the model's own, from ", own.Describe());

        // chat_template.jinja alone (no tokenizer_config.json) is the model's template too.
        var jinja = Bare("jinja", ("chat_template.jinja",
            "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}"));
        var fromJinja = TemplateChoice.Resolve(null, Path.Combine(jinja, "tokenizer.json"), _chat.Tokenizer, ChatTemplates.Plain);
        Assert.Equal(TemplateOrigin.Model, fromJinja.Origin);
        Assert.EndsWith("chat_template.jinja", fromJinja.Name);
        // It renders a probe's prompt exactly as the built-in ChatML does, so a probe trained with either reads the other's prompts.
        Assert.Equal(TemplateChoice.PromptFormat(ChatTemplates.ChatMl), TemplateChoice.PromptFormat(fromJinja.Template));
        Assert.Equal("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", TemplateChoice.PromptFormat(own.Template));
        Assert.Equal("{prompt}", TemplateChoice.PromptFormat(null));
    }

    [Fact]
    public void A_named_template_must_fit_the_vocabulary_and_a_chat_vocabulary_needs_a_template()
    {
        var named = TemplateChoice.Resolve("chatml", _chat.TokenizerPath, _chat.Tokenizer, ChatTemplates.Plain);
        Assert.Equal(TemplateOrigin.Named, named.Origin);
        Assert.Equal("chat template: chatml (--template)", named.Describe());

        var wrong = Assert.Throws<OptionException>(() => TemplateChoice.Resolve("llama3", _chat.TokenizerPath, _chat.Tokenizer, ChatTemplates.Plain));
        Assert.Contains("--template llama3", wrong.Message);
        Assert.Contains("<|eot_id|>", wrong.Message);

        // tokenizer.json without tokenizer_config.json: the ChatML special tokens say what the plain fallback would miss.
        var bare = Path.Combine(Bare("bare"), "tokenizer.json");
        var refused = Assert.Throws<OptionException>(() => TemplateChoice.Resolve(null, bare, _chat.Tokenizer, ChatTemplates.Plain));
        Assert.Contains("chatml special tokens", refused.Message);
        Assert.Contains("--template chatml", refused.Message);

        // A template recorded with the input (a fused probe's) is taken before that fallback.
        var recorded = new TemplateChoice(ChatTemplates.ChatMl, TemplateOrigin.Recorded, bare, "probe.json");
        var kept = TemplateChoice.Resolve(null, bare, _chat.Tokenizer, ChatTemplates.Plain, recorded);
        Assert.Same(ChatTemplates.ChatMl, kept.Template);
        Assert.Equal("chat template: chatml (recorded in probe.json)", kept.Describe());

        // A probe may read raw text; chat commands may not.
        Assert.Null(TemplateChoice.Resolve("raw", bare, _chat.Tokenizer, fallback: null).Template);
        Assert.Throws<UserInputException>(() => TemplateChoice.Resolve("raw", bare, _chat.Tokenizer, ChatTemplates.Plain));
    }

    [Fact]
    public void With_no_template_and_no_chat_tokens_the_fallback_comes_with_a_warning()
    {
        var stories = Repo.Fixture("tokenizers", "hub", "stories260k");
        var dir = _chat.File("stories");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "tokenizer.json");
        File.Copy(Path.Combine(stories, "tokenizer.json"), path);
        var tokenizer = Tokenization.TokenizerLoader.Load(path);
        var choice = TemplateChoice.Resolve(null, path, tokenizer, ChatTemplates.Plain);
        Assert.Equal(TemplateOrigin.Default, choice.Origin);
        Assert.Same(ChatTemplates.Plain, choice.Template);
        Assert.Contains(path, choice.Warning);
        Assert.Contains("plain 'User:' / 'Assistant:' text", choice.Warning);
        var probe = TemplateChoice.Resolve(null, path, tokenizer, fallback: null);
        Assert.Null(probe.Template);
        Assert.Contains("raw text", probe.Warning);
    }
}
